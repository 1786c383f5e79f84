//! The demo's background traffic, and the small DNS and HTTP clients it uses.
//!
//! Simulated clients in different countries "visit" the GSLB names: each visit is one DNS
//! query carrying the client's subnet (EDNS Client Subnet, as a public resolver would send
//! it), then one `GET /` to the pool of the region the answer's CNAME names. The rate is fixed
//! and low ([`VISITS_PER_SECOND`]), so answer shares and pool request rates move visibly when
//! a backend or a region stops, without loading the machine.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RData;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

use super::control::Demo;

/// Visits a second, over all simulated clients together.
pub const VISITS_PER_SECOND: u32 = 6;

/// How long one DNS exchange may take.
const DNS_TIMEOUT: Duration = Duration::from_secs(1);

/// How long one HTTP exchange may take, connection included.
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest HTTP answer read (the demo's answers are a few hundred bytes).
const HTTP_MAX_BYTES: u64 = 64 * 1024;

/// A simulated client: where it is and the subnet its resolver reports.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The country, for people.
    pub country: &'static str,
    /// ISO 3166-1 code.
    pub code: &'static str,
    /// Network address of its /24 (a real network of that country, as the shipped geo
    /// database and the full data it comes from both place it).
    pub subnet: Ipv4Addr,
}

/// The simulated clients, two or more on each inhabited continent.
pub const CLIENTS: [Client; 16] = [
    client("United States", "US", [8, 8, 8, 0]),
    client("United Kingdom", "GB", [81, 2, 69, 0]),
    client("Japan", "JP", [133, 0, 0, 0]),
    client("Brazil", "BR", [200, 147, 0, 0]),
    client("Germany", "DE", [193, 99, 144, 0]),
    client("Australia", "AU", [139, 130, 0, 0]),
    client("South Africa", "ZA", [196, 25, 1, 0]),
    client("Canada", "CA", [24, 114, 0, 0]),
    client("India", "IN", [49, 44, 0, 0]),
    client("France", "FR", [90, 0, 0, 0]),
    client("Singapore", "SG", [165, 21, 0, 0]),
    client("Argentina", "AR", [200, 45, 0, 0]),
    client("Nigeria", "NG", [105, 112, 0, 0]),
    client("United Arab Emirates", "AE", [94, 200, 0, 0]),
    client("South Korea", "KR", [168, 126, 63, 0]),
    client("Egypt", "EG", [41, 32, 0, 0]),
];

/// A [`Client`] (const helper).
const fn client(country: &'static str, code: &'static str, subnet: [u8; 4]) -> Client {
    Client {
        country,
        code,
        subnet: Ipv4Addr::new(subnet[0], subnet[1], subnet[2], subnet[3]),
    }
}

/// Sends visits at [`VISITS_PER_SECOND`] until `stopped` changes.
pub async fn run(demo: Arc<Demo>, mut stopped: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / VISITS_PER_SECOND);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let services = demo.topology().services.clone();
    if services.is_empty() {
        return;
    }
    let mut visit: usize = 0;
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = ticks.tick() => {}
        }
        let client = CLIENTS[visit % CLIENTS.len()];
        let service = &services[visit % services.len()];
        visit = visit.wrapping_add(1);
        tokio::select! {
            _ = stopped.changed() => return,
            () = one_visit(&demo, client, service, visit as u16) => {}
        }
    }
}

/// Resolves `service` as `client`, then fetches `/` from the pool the answer names.
async fn one_visit(demo: &Demo, client: Client, service: &str, id: u16) {
    let topology = demo.topology();
    let Ok(Some(target)) = resolve(topology.dns, service, client.subnet, 24, id).await else {
        demo.count_visit(None);
        return;
    };
    let Some(region) = topology.region_of_target(&target) else {
        demo.count_visit(None);
        return;
    };
    demo.count_visit(Some(&region.name));
    let header = ("x-demo-client", client.code);
    let _ = http_get(region.pool, "/", &[header]).await;
}

/// Asks `dns` for `name` A with the client subnet `subnet/source`; the CNAME target of the
/// answer (absolute, lowercase), or `None` if the answer has none.
pub async fn resolve(
    dns: SocketAddr,
    name: &str,
    subnet: Ipv4Addr,
    source: u8,
    id: u16,
) -> std::io::Result<Option<String>> {
    let bind: SocketAddr = match dns {
        SocketAddr::V4(v4) => (*v4.ip(), 0).into(),
        SocketAddr::V6(v6) => (*v6.ip(), 0).into(),
    };
    let socket = UdpSocket::bind(bind).await?;
    socket
        .send_to(&ecs_query(id, name, subnet, source), dns)
        .await?;
    let mut buf = vec![0u8; 4096];
    let len = tokio::time::timeout(DNS_TIMEOUT, async {
        loop {
            let (len, from) = socket.recv_from(&mut buf).await?;
            if from == dns && len >= 2 && buf[..2] == id.to_be_bytes() {
                return Ok::<_, std::io::Error>(len);
            }
        }
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no DNS answer in time"))??;
    let message = Message::from_vec(&buf[..len]).map_err(std::io::Error::other)?;
    Ok(message
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::CNAME(cname) => Some(cname.0.to_ascii().to_ascii_lowercase()),
            _ => None,
        }))
}

/// A query for `name` A with RD, EDNS (1232 bytes) and the client subnet `subnet/source`.
pub fn ecs_query(id: u16, name: &str, subnet: Ipv4Addr, source: u8) -> Vec<u8> {
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&[0, 1, 0, 1]);
    // OPT: root owner, type 41, payload 1232, no extended RCODE or flags.
    let source = source.min(32);
    let address_bytes = usize::from(source.div_ceil(8));
    let option_len = 4 + address_bytes;
    packet.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    packet.extend_from_slice(&((4 + option_len) as u16).to_be_bytes());
    // EDNS Client Subnet (option 8): family 1, SOURCE, SCOPE 0, the address cut to SOURCE.
    packet.extend_from_slice(&[0, 8]);
    packet.extend_from_slice(&(option_len as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 1, source, 0]);
    let masked = u32::from(subnet) & u32::MAX.checked_shl(32 - u32::from(source)).unwrap_or(0);
    packet.extend_from_slice(&masked.to_be_bytes()[..address_bytes]);
    packet
}

/// `GET path` on `addr` over a fresh HTTP/1.1 connection (`Connection: close`), with extra
/// `headers`; the status and the body (as text).
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    tokio::time::timeout(HTTP_TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.take(HTTP_MAX_BYTES).read_to_end(&mut raw).await?;
        parse_response(&raw)
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no HTTP answer in time"))?
}

/// The status and body of a complete HTTP/1.1 response (identity or chunked body).
fn parse_response(raw: &[u8]) -> std::io::Result<(u16, String)> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status code"))?;
    let body = &raw[split + 4..];
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The data of a chunked body (as much as is complete).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(end) = body.windows(2).position(|window| window == b"\r\n") {
        let size_text = String::from_utf8_lossy(&body[..end]);
        let Ok(size) = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
        else {
            break;
        };
        let start = end + 2;
        if size == 0 || body.len() < start + size {
            break;
        }
        data.extend_from_slice(&body[start..start + size]);
        body = &body[(start + size + 2).min(body.len())..];
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_query_carries_the_cut_subnet() {
        let packet = ecs_query(7, "www.example.test", Ipv4Addr::new(81, 2, 69, 142), 24);
        let message = Message::from_vec(&packet).unwrap();
        assert_eq!(message.queries.len(), 1);
        assert_eq!(message.queries[0].name().to_ascii(), "www.example.test.");
        let tail = &packet[packet.len() - 11..];
        assert_eq!(tail, [0, 8, 0, 7, 0, 1, 24, 0, 81, 2, 69]);
        let packet = ecs_query(7, "a.test", Ipv4Addr::new(10, 255, 1, 1), 12);
        assert_eq!(&packet[packet.len() - 6..], [0, 1, 12, 0, 10, 240]);
    }

    #[test]
    fn responses_parse_with_either_body_framing() {
        let (status, body) =
            parse_response(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nno")
                .unwrap();
        assert_eq!((status, body.as_str()), (503, "no"));
        let (status, body) = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((status, body.as_str()), (200, "abcde"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
