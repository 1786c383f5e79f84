//! Fuzzes master-file parsing and zone building: arbitrary UTF-8 text through `parse_zone_str`,
//! then `Zone::build` when it parses. Neither may panic, whatever the text.
//!
//! `$INCLUDE` resolves against an empty directory, so includes can only fail (or be rejected
//! for escaping it); the fuzzer never reads real files.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use meridian::zone::Zone;
use meridian::zone::parse::parse_zone_str;

/// The origin every input is parsed as (relative names in the text hang off it).
static ORIGIN: LazyLock<Name> =
    LazyLock::new(|| Name::from_ascii("example.com.").expect("fixed origin is a valid name"));

/// An empty directory, created once, used as the `$INCLUDE` root.
static INCLUDE_ROOT: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join("meridian-fuzz-empty");
    std::fs::create_dir_all(&dir).expect("create the empty include root");
    dir
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A file name that does not exist, so include-loop detection has nothing to canonicalise.
    let file = Path::new("fuzz-input.zone");
    if let Ok(records) = parse_zone_str(text, file, &ORIGIN, &INCLUDE_ROOT) {
        let _ = Zone::build(&ORIGIN, file, records);
    }
});
