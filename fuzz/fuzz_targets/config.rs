//! Fuzzes config validation: arbitrary UTF-8 text through `Config::parse`, which must return a
//! config or an error and never panic.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use meridian::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::parse(text, Path::new("/nonexistent/meridian.toml"));
});
