//! Service manager notifications: the systemd `sd_notify` protocol, spoken directly.
//!
//! When the process runs under a service manager that set `NOTIFY_SOCKET` (systemd with
//! `Type=notify` or `Type=notify-reload`), it is told when the server is ready, when a reload
//! starts and ends, and when the server stops. Each notification is one datagram of
//! newline-separated `KEY=VALUE` assignments sent to that socket: a file system path, or an
//! abstract socket name written with a leading `@`.
//!
//! A reload ends with `READY=1` whether it succeeded or not, since the server serves either way
//! and the protocol has no way to report a failed reload; the `STATUS=` line (what
//! `systemctl status` shows) says which.
//!
//! Without `NOTIFY_SOCKET` every function here does nothing. A notification that cannot be sent
//! is logged once and otherwise ignored: the server serves whether or not its manager listens.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable that names the manager's notification socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Set once a failed notification has been logged, so a manager that went away is not reported
/// on every reload.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Tells the manager the server is serving: after start-up, and again after every reload that
/// succeeded.
pub fn ready() {
    notify(&ready_message());
}

/// Ends a reload that failed: the server is ready again, serving the data it had, and its
/// status line says why the reload failed (`error`, the first line of the error).
pub fn ready_after_failed_reload(error: &str) {
    notify(&reload_failed_message(error));
}

/// Tells the manager a reload is starting; [`ready`] ends it.
pub fn reloading() {
    match monotonic_usec() {
        Ok(usec) => notify(&reloading_message(usec)),
        Err(err) => warn_once(&err),
    }
}

/// Tells the manager the server is stopping.
pub fn stopping() {
    notify(&stopping_message());
}

/// The message that reports readiness.
///
/// It carries no `MAINPID=`: the manager already knows the process it started, and a process
/// in a PID namespace of its own (a container run with `podman --sdnotify=container`) would
/// name a PID the manager cannot see.
pub fn ready_message() -> String {
    "READY=1\nSTATUS=Serving\n".to_string()
}

/// Longest reload error, in bytes, that the status line carries; the log has the whole error.
const STATUS_ERROR_MAX: usize = 200;

/// The message that ends a failed reload: ready again, on the previous data, with `error`'s
/// first line (control characters replaced, cut to [`STATUS_ERROR_MAX`] bytes) in the status.
pub fn reload_failed_message(error: &str) -> String {
    let first = error.lines().next().unwrap_or("").trim();
    let mut line = String::with_capacity(first.len().min(STATUS_ERROR_MAX));
    for c in first.chars() {
        if line.len() + c.len_utf8() > STATUS_ERROR_MAX {
            break;
        }
        line.push(if c.is_control() { ' ' } else { c });
    }
    if line.is_empty() {
        return "READY=1\nSTATUS=Serving the previous data; reload failed\n".to_string();
    }
    format!("READY=1\nSTATUS=Serving the previous data; reload failed: {line}\n")
}

/// The message that starts a reload at `monotonic_usec` (`CLOCK_MONOTONIC`, in microseconds).
///
/// `Type=notify-reload` requires the timestamp: the manager compares it with the time it asked
/// for the reload, so it knows this reload is the answer to its request and not an older one.
pub fn reloading_message(monotonic_usec: u64) -> String {
    format!("RELOADING=1\nSTATUS=Reloading the config and zones\nMONOTONIC_USEC={monotonic_usec}\n")
}

/// The message that reports the stop.
pub fn stopping_message() -> String {
    "STOPPING=1\nSTATUS=Stopping: finishing queries in flight\n".to_string()
}

/// Now on `CLOCK_MONOTONIC`, in microseconds, as systemd counts it.
pub fn monotonic_usec() -> io::Result<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_err(|errno| io::Error::other(format!("cannot read CLOCK_MONOTONIC: {errno}")))?;
    let seconds = u64::try_from(now.tv_sec()).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec()).unwrap_or(0);
    Ok(seconds * 1_000_000 + nanos / 1_000)
}

/// Sends `message` to the socket `NOTIFY_SOCKET` names, if it is set; a failure is logged once.
fn notify(message: &str) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    if let Err(err) = send(&socket, message) {
        warn_once(&err);
    }
}

/// Logs `err` as a warning, the first time only.
fn warn_once(err: &io::Error) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(%err, "cannot notify the service manager; serving anyway");
    }
}

/// Sends `message` as one datagram to `socket`: an absolute path, or `@name` for the abstract
/// socket `name`. The error says which socket and what went wrong.
pub fn send(socket: &OsStr, message: &str) -> io::Result<()> {
    let address = address(socket)?;
    let sender = UnixDatagram::unbound()?;
    let sent = sender
        .send_to_addr(message.as_bytes(), &address)
        .map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("{NOTIFY_SOCKET}={}: {err}", socket.to_string_lossy()),
            )
        })?;
    if sent != message.len() {
        return Err(io::Error::other(format!(
            "{NOTIFY_SOCKET}={}: sent {sent} of {} bytes",
            socket.to_string_lossy(),
            message.len()
        )));
    }
    Ok(())
}

/// The socket address `socket` names.
fn address(socket: &OsStr) -> io::Result<SocketAddr> {
    let bytes = socket.as_bytes();
    let invalid = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{NOTIFY_SOCKET}={}: {why}", socket.to_string_lossy()),
        )
    };
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(socket).map_err(|err| invalid(&err.to_string())),
        Some(b'@') => abstract_address(&bytes[1..]).map_err(|err| invalid(&err.to_string())),
        _ => Err(invalid(
            "not an absolute path or an abstract socket name starting with '@'",
        )),
    }
}

/// The abstract socket address `name` (Linux only).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

/// Abstract sockets exist only on Linux.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::time::Duration;

    use super::*;

    /// A bound receiver and the `NOTIFY_SOCKET` value that names it.
    fn receiver(dir: &tempfile::TempDir) -> (UnixDatagram, OsString) {
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notification socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (socket, path.into_os_string())
    }

    /// The next datagram on `socket`, as text.
    fn receive(socket: &UnixDatagram) -> String {
        let mut buffer = [0u8; 4096];
        let len = socket.recv(&mut buffer).expect("a notification arrives");
        String::from_utf8(buffer[..len].to_vec()).expect("UTF-8")
    }

    #[test]
    fn sends_each_message_as_one_datagram_to_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, name) = receiver(&dir);
        send(&name, &ready_message()).unwrap();
        send(&name, &reloading_message(1_234_567)).unwrap();
        send(&name, &stopping_message()).unwrap();
        assert_eq!(receive(&socket), "READY=1\nSTATUS=Serving\n");
        assert_eq!(
            receive(&socket),
            "RELOADING=1\nSTATUS=Reloading the config and zones\nMONOTONIC_USEC=1234567\n"
        );
        assert!(receive(&socket).starts_with("STOPPING=1\n"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("meridian-notify-test-{}", std::process::id());
        let address = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&address).expect("bind an abstract socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        send(OsStr::new(&format!("@{name}")), "READY=1\n").unwrap();
        assert_eq!(receive(&socket), "READY=1\n");
    }

    #[test]
    fn a_missing_socket_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody-listens.sock");
        let err = send(path.as_os_str(), "READY=1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("NOTIFY_SOCKET="), "{text}");
        assert!(text.contains("nobody-listens.sock"), "{text}");
    }

    #[test]
    fn relative_and_empty_names_are_refused() {
        for name in ["notify.sock", "", "./notify.sock"] {
            let err = send(OsStr::new(name), "READY=1\n").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name:?}");
            assert!(err.to_string().contains("absolute path"), "{name:?}: {err}");
        }
    }

    #[test]
    fn the_reload_timestamp_is_the_monotonic_clock_in_microseconds() {
        let before = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
        let usec = monotonic_usec().unwrap();
        let after = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
        let micros = |spec: nix::sys::time::TimeSpec| {
            spec.tv_sec() as u64 * 1_000_000 + spec.tv_nsec() as u64 / 1_000
        };
        assert!(micros(before) <= usec && usec <= micros(after));
        assert!(
            reloading_message(usec).contains(&format!("\nMONOTONIC_USEC={usec}\n")),
            "{}",
            reloading_message(usec)
        );
    }

    #[test]
    fn the_ready_message_names_no_process() {
        let message = ready_message();
        assert!(message.starts_with("READY=1\n"), "{message}");
        assert!(!message.contains("MAINPID="), "{message}");
    }

    #[test]
    fn a_failed_reload_is_ready_on_the_previous_data_with_the_first_error_line() {
        let message = reload_failed_message(
            "zones/example.com.zone:3: unknown record type FOO\nzones/b.zone:1: second error\n",
        );
        assert_eq!(
            message,
            "READY=1\nSTATUS=Serving the previous data; reload failed: \
             zones/example.com.zone:3: unknown record type FOO\n"
        );
    }

    #[test]
    fn the_reload_error_in_the_status_is_one_bounded_line() {
        let long = format!("tab\there\rreturn {}\nsecond line", "é".repeat(400));
        let message = reload_failed_message(&long);
        let status = message
            .strip_prefix("READY=1\nSTATUS=")
            .and_then(|rest| rest.strip_suffix('\n'))
            .expect("two assignments");
        assert!(!status.contains(['\n', '\r', '\t']), "{status:?}");
        let error = status
            .strip_prefix("Serving the previous data; reload failed: ")
            .unwrap();
        assert!(error.len() <= STATUS_ERROR_MAX, "{} bytes", error.len());
        assert!(
            error.len() > STATUS_ERROR_MAX - 2,
            "cut at the limit, not before"
        );
        assert!(error.starts_with("tab here return é"), "{error}");
        assert_eq!(
            reload_failed_message(""),
            "READY=1\nSTATUS=Serving the previous data; reload failed\n"
        );
    }
}
