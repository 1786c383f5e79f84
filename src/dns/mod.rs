//! The DNS server: wire parsing, the answer engine and the UDP and TCP serving loops.
//!
//! - [`wire`] reads queries without allocating.
//! - [`answer`] turns a query into a response from a [`crate::snapshot::Snapshot`].
//! - [`message`] writes responses into reused buffers.
//! - [`udp`] and [`tcp`] move packets; both call [`answer::respond`].

pub mod answer;
pub mod message;
pub mod tcp;
pub mod udp;
pub mod wire;

pub use answer::{Outcome, Transport, respond};
pub use message::Rcode;
