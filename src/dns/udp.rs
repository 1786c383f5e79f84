//! The UDP serving loop: one `SO_REUSEPORT` socket per worker thread, no task per packet.
//!
//! Each worker owns its socket and two buffers for its whole life. Per packet it loads the
//! current snapshot (a lock-free `ArcSwap` read), answers into its buffer and sends. The kernel
//! spreads packets over the sockets of one address by flow hash.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};

use super::answer::{Transport, respond};
use crate::snapshot::Snapshot;

/// How often a blocked worker wakes up to see whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(100);
/// Largest UDP datagram.
const MAX_DATAGRAM: usize = 65_535;
/// Socket buffer size asked for, so bursts are not dropped by the kernel.
const SOCKET_BUFFER: usize = 4 << 20;

/// Binds `count` UDP sockets to `addr` with `SO_REUSEPORT`. Port 0 picks one port for all.
pub fn bind(addr: SocketAddr, count: usize) -> io::Result<Vec<UdpSocket>> {
    let first = bind_one(addr)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_one(addr)?);
    }
    Ok(sockets)
}

/// One UDP socket with `SO_REUSEPORT`, IPv6-only for IPv6 addresses.
fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    // Best effort: a smaller buffer only costs burst tolerance.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(STOP_POLL))?;
    Ok(socket)
}

/// Starts one worker thread per socket; they run until `stop` is set.
pub fn spawn_workers(
    sockets: Vec<UdpSocket>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    stop: Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::with_capacity(sockets.len());
    for (index, socket) in sockets.into_iter().enumerate() {
        let snapshot = Arc::clone(&snapshot);
        let stop = Arc::clone(&stop);
        let name = format!("udp-{index}");
        handles.push(
            std::thread::Builder::new()
                .name(name)
                .spawn(move || serve(&socket, &snapshot, &stop))?,
        );
    }
    Ok(handles)
}

/// The worker loop: receive, answer, send, until told to stop.
fn serve(socket: &UdpSocket, snapshot: &ArcSwap<Snapshot>, stop: &AtomicBool) {
    let mut packet = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    while !stop.load(Ordering::Relaxed) {
        let (len, peer) = match socket.recv_from(&mut packet) {
            Ok(received) => received,
            Err(err) => match err.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => continue,
                _ => {
                    tracing::debug!(?err, "udp receive failed");
                    continue;
                }
            },
        };
        let current = snapshot.load();
        if respond(&current, &packet[..len], Transport::Udp, &mut out).is_some()
            && let Err(err) = socket.send_to(&out, peer)
        {
            tracing::debug!(%peer, ?err, "udp send failed");
        }
    }
}
