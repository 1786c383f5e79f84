//! Service manager readiness notifications (systemd `Type=notify`).

/// The server is serving.
pub fn ready() {}

/// A reload is starting.
pub fn reloading() {}

/// The server is stopping.
pub fn stopping() {}
