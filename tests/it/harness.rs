//! Starting real servers on port 0 and speaking raw DNS to them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::op::Message;
use meridian::server::RunningServer;
use meridian::snapshot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The main test zone: every case the conformance tests need.
pub const EXAMPLE_COM: &str = include_str!("../data/example.com.zone");

/// A second zone, for CNAME chains that cross zones.
pub const EXAMPLE_NET: &str = include_str!("../data/example.net.zone");

/// Large answers: RRsets too big for 512 or 1232 bytes, and a referral with ~1 KB of glue.
pub const BIG_TEST: &str = include_str!("../data/big.test.zone");

/// A server running on loopback port 0 with its own temporary config and zones.
pub struct TestServer {
    /// The running server.
    pub server: RunningServer,
    /// Holds the config and zone files.
    pub dir: tempfile::TempDir,
}

/// The default zone set: example.com, example.net and big.test.
pub fn default_zones() -> Vec<(String, String)> {
    vec![
        ("example.com".into(), EXAMPLE_COM.into()),
        ("example.net".into(), EXAMPLE_NET.into()),
        ("big.test".into(), BIG_TEST.into()),
    ]
}

impl TestServer {
    /// Starts a server for the default zones.
    pub async fn start() -> TestServer {
        TestServer::with(&default_zones(), "").await
    }

    /// Starts a server for `zones` (origin, text), with `extra` lines added to `[dns]`.
    pub async fn with(zones: &[(String, String)], extra: &str) -> TestServer {
        TestServer::custom(zones, extra, "", &[]).await
    }

    /// Starts a server for `zones`, with `extra` lines added to `[dns]`, `sections` appended to
    /// the config, and `files` (name, contents) written beside it.
    pub async fn custom(
        zones: &[(String, String)],
        extra: &str,
        sections: &str,
        files: &[(&str, &[u8])],
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("zones")).expect("zones dir");
        for (origin, text) in zones {
            std::fs::write(
                dir.path().join("zones").join(format!("{origin}.zone")),
                text,
            )
            .expect("write zone");
        }
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).expect("write file");
        }
        std::fs::write(
            dir.path().join("meridian.toml"),
            format!(
                "[dns]\nlisten = [\"127.0.0.1:0\"]\nzones_dir = \"zones\"\nudp_workers = 2\n{extra}\n{sections}\n"
            ),
        )
        .expect("write config");
        let loaded = snapshot::load(&dir.path().join("meridian.toml")).expect("test config loads");
        let server = RunningServer::start(loaded).expect("server starts");
        TestServer { server, dir }
    }

    /// The UDP address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.server.udp_addrs()[0]
    }

    /// The TCP address.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.server.tcp_addrs()[0]
    }

    /// Path of zone file `origin`.
    pub fn zone_path(&self, origin: &str) -> PathBuf {
        self.dir.path().join("zones").join(format!("{origin}.zone"))
    }

    /// Sends `packet` over UDP; the reply, or `None` if none came within `wait`.
    pub async fn udp_exchange(&self, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
        udp_exchange(self.udp_addr(), packet, wait).await
    }

    /// Sends `packet` over UDP and expects a reply.
    pub async fn udp_raw(&self, packet: &[u8]) -> Vec<u8> {
        self.udp_exchange(packet, Duration::from_secs(5))
            .await
            .expect("a UDP reply")
    }

    /// Sends `packet` over a new TCP connection and reads one reply.
    pub async fn tcp_raw(&self, packet: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(self.tcp_addr())
            .await
            .expect("tcp connect");
        write_framed(&mut stream, packet).await;
        read_framed(&mut stream).await.expect("a TCP reply")
    }

    /// Sends `query` over UDP and decodes the reply.
    pub async fn udp(&self, query: &Query) -> Reply {
        Reply::decode(self.udp_raw(&query.build()).await)
    }

    /// Sends `query` over TCP and decodes the reply.
    pub async fn tcp(&self, query: &Query) -> Reply {
        Reply::decode(self.tcp_raw(&query.build()).await)
    }
}

/// One UDP exchange from a fresh socket.
pub async fn udp_exchange(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind client");
    socket.send_to(packet, server).await.expect("send");
    let mut buf = vec![0u8; 65_535];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(buf[..len].to_vec()),
        _ => None,
    }
}

/// Writes a length-prefixed message.
pub async fn write_framed(stream: &mut TcpStream, packet: &[u8]) {
    stream
        .write_u16(packet.len() as u16)
        .await
        .expect("write length");
    stream.write_all(packet).await.expect("write message");
}

/// Reads a length-prefixed message, or `None` if the connection closed.
pub async fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let read = async {
        let len = stream.read_u16().await.ok()?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("TCP reply in time")
}

/// A query to build as raw bytes, every header bit under the test's control.
#[derive(Debug, Clone)]
pub struct Query {
    /// Message ID.
    pub id: u16,
    /// Name in presentation format (case kept).
    pub name: String,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// Flags word (default: RD).
    pub flags: u16,
    /// OPT record: (payload, version, flags, rdata).
    pub edns: Option<(u16, u8, u16, Vec<u8>)>,
}

impl Query {
    /// A class IN query with RD set and no EDNS.
    pub fn new(name: &str, qtype: u16) -> Query {
        Query {
            id: 0x4d52,
            name: name.to_string(),
            qtype,
            qclass: 1,
            flags: 0x0100,
            edns: None,
        }
    }

    /// Adds an OPT record with payload `payload`, version 0, no flags, no options.
    pub fn edns(mut self, payload: u16) -> Query {
        self.edns = Some((payload, 0, 0, Vec::new()));
        self
    }

    /// The query in wire format.
    pub fn build(&self) -> Vec<u8> {
        let mut packet = Vec::new();
        packet.extend_from_slice(&self.id.to_be_bytes());
        packet.extend_from_slice(&self.flags.to_be_bytes());
        let arcount: u16 = if self.edns.is_some() { 1 } else { 0 };
        packet.extend_from_slice(&[0, 1, 0, 0, 0, 0]);
        packet.extend_from_slice(&arcount.to_be_bytes());
        packet.extend_from_slice(&wire_name(&self.name));
        packet.extend_from_slice(&self.qtype.to_be_bytes());
        packet.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some((payload, version, flags, rdata)) = &self.edns {
            packet.extend_from_slice(&[0, 0, 41]);
            packet.extend_from_slice(&payload.to_be_bytes());
            packet.extend_from_slice(&[0, *version]);
            packet.extend_from_slice(&flags.to_be_bytes());
            packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            packet.extend_from_slice(rdata);
        }
        packet
    }
}

/// A presentation name (no escapes) in wire format, case kept.
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|label| !label.is_empty())
    {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// A decoded reply, with the raw bytes kept for header-level checks.
#[derive(Debug)]
pub struct Reply {
    /// The bytes received.
    pub raw: Vec<u8>,
    /// The message as hickory-proto decodes it.
    pub message: Message,
}

impl Reply {
    /// Decodes `raw`, which must be a well-formed message.
    pub fn decode(raw: Vec<u8>) -> Reply {
        let message = Message::from_vec(&raw)
            .unwrap_or_else(|err| panic!("reply does not decode: {err}: {raw:02x?}"));
        Reply { raw, message }
    }

    /// The flags word.
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.raw[2], self.raw[3]])
    }

    /// The full RCODE: header low bits plus the OPT's extended bits.
    pub fn rcode(&self) -> u16 {
        let high = self
            .message
            .edns
            .as_ref()
            .map_or(0, |edns| u16::from(edns.rcode_high()));
        (high << 4) | (self.flags() & 0xf)
    }

    /// AA flag.
    pub fn aa(&self) -> bool {
        self.flags() & 0x0400 != 0
    }

    /// TC flag.
    pub fn tc(&self) -> bool {
        self.flags() & 0x0200 != 0
    }

    /// Answer records as "name TTL TYPE rdata" lines.
    pub fn answers(&self) -> Vec<String> {
        self.message
            .answers
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Authority records as text lines.
    pub fn authority(&self) -> Vec<String> {
        self.message
            .authorities
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// Additional records (OPT excluded) as text lines.
    pub fn additional(&self) -> Vec<String> {
        self.message
            .additionals
            .iter()
            .map(ToString::to_string)
            .collect()
    }
}

/// Rcode numbers.
pub mod rcode {
    /// NOERROR.
    pub const NOERROR: u16 = 0;
    /// FORMERR.
    pub const FORMERR: u16 = 1;
    /// SERVFAIL.
    pub const SERVFAIL: u16 = 2;
    /// NXDOMAIN.
    pub const NXDOMAIN: u16 = 3;
    /// NOTIMP.
    pub const NOTIMP: u16 = 4;
    /// REFUSED.
    pub const REFUSED: u16 = 5;
    /// BADVERS.
    pub const BADVERS: u16 = 16;
}

/// Type numbers.
pub mod qtype {
    /// A.
    pub const A: u16 = 1;
    /// NS.
    pub const NS: u16 = 2;
    /// CNAME.
    pub const CNAME: u16 = 5;
    /// SOA.
    pub const SOA: u16 = 6;
    /// MX.
    pub const MX: u16 = 15;
    /// TXT.
    pub const TXT: u16 = 16;
    /// AAAA.
    pub const AAAA: u16 = 28;
    /// DS.
    pub const DS: u16 = 43;
    /// IXFR.
    pub const IXFR: u16 = 251;
    /// AXFR.
    pub const AXFR: u16 = 252;
    /// MAILB.
    pub const MAILB: u16 = 253;
    /// MAILA.
    pub const MAILA: u16 = 254;
    /// ANY.
    pub const ANY: u16 = 255;
}
