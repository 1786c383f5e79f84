//! Geo steering: where clients are, compiled into per-map prefix tables at load.
//!
//! - [`source`] reads MaxMind DB files (City/Country and ASN models) and the nets override CSV.

pub mod source;
