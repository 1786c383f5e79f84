//! Geo steering: where clients are, compiled into per-map prefix tables at load.
//!
//! - [`source`] reads MaxMind DB files (City/Country and ASN models) and the nets override CSV.
//! - [`table`] is the immutable longest-prefix table with merged leaves (the ECS scope).
//! - [`compile`] turns every configured map into a table of ordered region lists.
//! - [`mmdb_write`] writes MaxMind DB files, and [`build_input`] reads the CSV inputs of
//!   `meridian geo build`; [`build`] ties them together.

pub mod build;
pub mod build_input;
pub mod compile;
pub mod mmdb_write;
pub mod source;
pub mod table;

pub use compile::{CompileReport, CompiledMap, GeoSnapshot, is_global};
