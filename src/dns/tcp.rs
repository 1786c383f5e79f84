//! The TCP serving loop (RFC 7766): length-prefixed messages, pipelining, idle timeout and a
//! connection limit, one task per connection so a slow client never blocks another.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::answer::{Transport, respond};
use crate::snapshot::Snapshot;

/// TCP serving settings.
#[derive(Debug, Clone, Copy)]
pub struct TcpSettings {
    /// Close a connection that sends nothing for this long.
    pub idle_timeout: Duration,
}

/// Accepts connections on `listener` until `shutdown` turns true. Connections are limited by
/// `slots`: once they are all taken, new connections wait in the kernel's accept queue.
pub async fn serve(
    listener: TcpListener,
    snapshot: Arc<ArcSwap<Snapshot>>,
    settings: TcpSettings,
    slots: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = stopped(&mut shutdown) => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Usually EMFILE or a connection reset before accept; back off briefly.
                    tracing::warn!(?err, "tcp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => return,
        };
        let snapshot = Arc::clone(&snapshot);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(err) = connection(stream, peer.ip(), &snapshot, settings, shutdown).await {
                tracing::debug!(%peer, ?err, "tcp connection ended with an error");
            }
            drop(permit);
        });
    }
}

/// Serves one connection: reads queries back to back and answers each in order. Between
/// queries it waits at most the idle timeout, and stops at shutdown; a query already read is
/// always answered first.
async fn connection(
    stream: TcpStream,
    peer: IpAddr,
    snapshot: &ArcSwap<Snapshot>,
    settings: TcpSettings,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut writer = BufWriter::new(writer);
    let mut query = Vec::new();
    let mut out = Vec::new();
    loop {
        let len = tokio::select! {
            read = tokio::time::timeout(settings.idle_timeout, reader.read_u16()) => match read {
                Ok(Ok(len)) => usize::from(len),
                // Idle timeout, or the client closed: both end the connection quietly.
                Ok(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => break,
                Ok(Err(err)) => return Err(err),
                Err(_) => break,
            },
            _ = stopped(&mut shutdown) => break,
        };
        query.resize(len, 0);
        match tokio::time::timeout(settings.idle_timeout, reader.read_exact(&mut query)).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) if err.kind() == io::ErrorKind::UnexpectedEof => break,
            Ok(Err(err)) => return Err(err),
            Err(_) => break,
        }
        let answered = {
            let current = snapshot.load();
            let started = std::time::Instant::now();
            let outcome = respond(&current, &query, peer, Transport::Tcp, &mut out);
            if let Some(outcome) = outcome {
                current.telemetry.record(
                    Transport::Tcp,
                    outcome.qtype,
                    outcome.rcode as u8,
                    started.elapsed(),
                );
            }
            outcome.is_some()
        };
        if answered {
            writer.write_u16(out.len() as u16).await?;
            writer.write_all(&out).await?;
        }
        // Flush once the client has no more pipelined queries waiting in our buffer.
        if reader.buffer().is_empty() {
            tokio::time::timeout(settings.idle_timeout, writer.flush())
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client not reading"))??;
        }
    }
    writer.flush().await?;
    writer.into_inner().shutdown().await
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it before anything else awaits.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}
