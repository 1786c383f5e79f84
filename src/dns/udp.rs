//! The UDP serving loop: one `SO_REUSEPORT` socket per worker thread, batched system calls.
//!
//! Each worker owns its socket and its buffers for its whole life. Per batch of datagrams it loads
//! the current snapshot (a lock-free `ArcSwap` read), answers each datagram into its own reply
//! buffer and sends them all with one `sendmmsg`. The kernel spreads packets over the sockets of
//! one address by flow hash.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};

use arc_swap::ArcSwap;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use socket2::{Domain, Protocol, Socket, Type};

use super::answer::{Transport, respond};
use crate::snapshot::Snapshot;

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
    Ok(socket.into())
}

/// UDP worker threads, and the means to stop them.
pub struct Workers {
    /// Set to tell workers to stop.
    stop: Arc<AtomicBool>,
    /// A handle on each worker's socket, to wake it with `shutdown(SHUT_RD)`.
    sockets: Vec<UdpSocket>,
    /// The threads.
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Stops every worker and waits for it to exit.
    ///
    /// Workers block in `recvmmsg` with no timeout (a timer armed per wait costs CPU on every
    /// idle moment); shutting the read side of the socket down wakes them at once.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for socket in &self.sockets {
            let _ = socket2::SockRef::from(socket).shutdown(std::net::Shutdown::Read);
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// Starts one worker thread per socket; they run until [`Workers::stop`].
pub fn spawn_workers(
    sockets: Vec<UdpSocket>,
    snapshot: Arc<ArcSwap<Snapshot>>,
) -> io::Result<Workers> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(sockets.len());
    let mut wakers = Vec::with_capacity(sockets.len());
    for (index, socket) in sockets.into_iter().enumerate() {
        wakers.push(socket.try_clone()?);
        let snapshot = Arc::clone(&snapshot);
        let stop = Arc::clone(&stop);
        let name = format!("udp-{index}");
        handles.push(
            std::thread::Builder::new()
                .name(name)
                .spawn(move || serve(&socket, &snapshot, &stop))?,
        );
    }
    Ok(Workers {
        stop,
        sockets: wakers,
        threads: handles,
    })
}

/// Most datagrams moved per `recvmmsg`/`sendmmsg` call.
const BATCH: usize = 32;

/// One worker's buffers, allocated once for its whole life.
struct Batch {
    /// Received datagrams.
    packets: Vec<Vec<u8>>,
    /// Replies, one per received datagram.
    replies: Vec<Vec<u8>>,
    /// Peer of each received datagram.
    peers: [Option<SockaddrStorage>; BATCH],
    /// Length of each received datagram; `None` if it is not to be answered.
    lens: [Option<usize>; BATCH],
    /// Kernel headers for `recvmmsg`.
    recv_headers: MultiHeaders<SockaddrStorage>,
    /// Kernel headers for `sendmmsg`.
    send_headers: MultiHeaders<SockaddrStorage>,
}

impl Batch {
    /// Buffers for `BATCH` datagrams each way.
    fn new() -> Batch {
        Batch {
            packets: (0..BATCH).map(|_| vec![0u8; MAX_DATAGRAM]).collect(),
            replies: (0..BATCH)
                .map(|_| Vec::with_capacity(MAX_DATAGRAM))
                .collect(),
            peers: [None; BATCH],
            lens: [None; BATCH],
            recv_headers: MultiHeaders::preallocate(BATCH, None),
            send_headers: MultiHeaders::preallocate(BATCH, None),
        }
    }
}

/// The worker loop: receive a batch, answer each datagram, send the batch, until told to stop.
///
/// `recvmmsg` with `MSG_WAITFORONE` blocks for the first datagram (up to the socket's read
/// timeout, so `stop` is checked regularly) and then takes whatever else is queued, so under
/// load one pair of system calls moves many queries and answers.
fn serve(socket: &UdpSocket, snapshot: &ArcSwap<Snapshot>, stop: &AtomicBool) {
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        // After shutdown(SHUT_RD) the kernel reports empty reads, and the loop condition exits.
        let received = match receive(fd, &mut batch) {
            Ok(received) => received,
            Err(Errno::EAGAIN | Errno::EINTR) => continue,
            Err(err) => {
                tracing::debug!(?err, "udp receive failed");
                continue;
            }
        };
        let current = snapshot.load();
        let mut answered = 0;
        for index in 0..received {
            let Some(peer) = batch.peers[index].as_ref().and_then(peer_ip) else {
                batch.lens[index] = None;
                continue;
            };
            let Some(len) = batch.lens[index] else {
                continue;
            };
            let packet = &batch.packets[index][..len];
            let reply = &mut batch.replies[index];
            let started = Instant::now();
            let Some(outcome) = respond(&current, packet, peer, Transport::Udp, reply) else {
                batch.lens[index] = None;
                continue;
            };
            current.telemetry.record(
                Transport::Udp,
                outcome.qtype,
                outcome.rcode as u8,
                started.elapsed(),
            );
            answered += 1;
        }
        drop(current);
        if answered > 0 {
            send(fd, &mut batch, received);
        }
    }
}

/// The IP address of a datagram's sender.
fn peer_ip(peer: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = peer.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    peer.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// Receives up to `BATCH` datagrams; fills `lens` and `peers`; returns how many slots were used.
fn receive(fd: RawFd, batch: &mut Batch) -> Result<usize, Errno> {
    let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
        std::array::from_fn(|_| [IoSliceMut::new(&mut [])]);
    for (slice, packet) in slices.iter_mut().zip(batch.packets.iter_mut()) {
        slice[0] = IoSliceMut::new(packet);
    }
    let results = recvmmsg(
        fd,
        &mut batch.recv_headers,
        slices.iter_mut(),
        MsgFlags::MSG_WAITFORONE,
        None,
    )?;
    let mut count = 0;
    for (index, message) in results.enumerate() {
        // A datagram larger than our buffer was cut short: it is no query worth parsing.
        let whole = !message.flags.contains(MsgFlags::MSG_TRUNC);
        batch.lens[index] = whole.then_some(message.bytes);
        batch.peers[index] = message.address;
        count = index + 1;
    }
    Ok(count)
}

/// Sends the replies of the first `received` slots that have one, in as few calls as it takes.
fn send(fd: RawFd, batch: &mut Batch, received: usize) {
    let mut slices: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|_| [IoSlice::new(&[])]);
    let mut peers: [Option<SockaddrStorage>; BATCH] = [None; BATCH];
    let mut count = 0;
    for index in 0..received {
        if batch.lens[index].is_some() && batch.peers[index].is_some() {
            slices[count] = [IoSlice::new(&batch.replies[index])];
            peers[count] = batch.peers[index];
            count += 1;
        }
    }
    let mut sent = 0;
    while sent < count {
        let result = sendmmsg(
            fd,
            &mut batch.send_headers,
            slices[sent..count].iter(),
            &peers[sent..count],
            [],
            MsgFlags::empty(),
        );
        match result {
            Ok(results) => {
                let done = results.count();
                if done == 0 {
                    break;
                }
                sent += done;
            }
            Err(Errno::EINTR) => continue,
            Err(err) => {
                // The first message failed (e.g. an unreachable peer): skip it, send the rest.
                tracing::debug!(?err, "udp send failed");
                sent += 1;
            }
        }
    }
}
