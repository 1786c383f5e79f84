//! The configuration reference, `docs/configuration.md`, checked against the config types.
//!
//! The keys the file accepts are listed by walking the serde mirrors in [`super::raw`] with a
//! deserializer that answers every request with a placeholder and records the field names
//! `deserialize_struct` is given ([`accepted`]). The keys the reference documents are read
//! from its tables: a table whose first column is `key`, under a heading that names its
//! section in backticks, such as `` ### `[[regions.NAME.monitor]]` `` ([`documented`]). The
//! two lists must agree, so a key added to the types without a line in the reference, or a
//! line for a key the types reject, fails a test. The reference's complete example uses every
//! key and is loaded through the real loader.
//!
//! Placeholders: a map's key (a region, a balancer, a backend set) is `*` in a key path. The
//! reference writes it in capitals (`NAME`, `REGION`, `SET`, `N`) or quoted (`"NAME"`,
//! `"PATH"`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::value::{BorrowedStrDeserializer, UsizeDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::raw::RawConfig;

/// The reference itself.
const REFERENCE: &str = include_str!("../../docs/configuration.md");
/// Where the reference lives, for messages.
const REFERENCE_PATH: &str = "docs/configuration.md";
/// The checks of `[maps.NAME]`, whose reserved keys are matched by hand rather than by serde.
const MAP_CHECKS: &str = include_str!("geo.rs");
/// The heading of the reference's complete example.
const COMPLETE_EXAMPLE_HEADING: &str = "## Complete example";

/// The name serde_spanned gives `Spanned<T>` when it asks for a struct.
const SPANNED: &str = "$__serde_spanned_private_Spanned";

/// A key path: one segment per table level, `*` for a map's key.
type KeyPath = Vec<String>;

/// How a path was reached while walking the types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    /// A field of a struct: a key the operator writes.
    Field,
    /// An entry of a map: a name the operator chooses (a region, a balancer, ...).
    Entry,
}

/// Every key path the types accept.
#[derive(Debug, Default)]
struct Accepted {
    /// Each path, and how it was reached.
    paths: BTreeMap<KeyPath, Reached>,
    /// Paths whose value is free-form TOML (`toml::Value`), checked by hand after serde.
    free: BTreeSet<KeyPath>,
}

/// What the walk records into.
#[derive(Debug, Default)]
struct Recorder {
    /// The result so far.
    accepted: RefCell<Accepted>,
}

/// A failed walk (the raw types asked for something the walker cannot give).
#[derive(Debug)]
struct WalkError(String);

impl fmt::Display for WalkError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl std::error::Error for WalkError {}

impl de::Error for WalkError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        WalkError(message.to_string())
    }
}

/// A deserializer that produces a placeholder of whatever shape is asked for, and records the
/// key path of every struct field and map entry on the way.
#[derive(Clone, Copy)]
struct Walker<'a> {
    /// Where the walk is; extended by [`Walker::child`].
    path: &'a [String],
    /// Where paths are recorded.
    recorder: &'a Recorder,
}

impl Walker<'_> {
    /// The path one level down, recorded as `reached`.
    fn child(&self, segment: &str, reached: Reached) -> KeyPath {
        let mut path = self.path.to_vec();
        path.push(segment.to_owned());
        self.recorder
            .accepted
            .borrow_mut()
            .paths
            .insert(path.clone(), reached);
        path
    }
}

/// Forwards the scalar requests of a [`de::Deserializer`] to one placeholder visit.
macro_rules! placeholders {
    ($($method:ident => $visit:ident($($value:expr)?);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
                visitor.$visit($($value)?)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Walker<'_> {
    type Error = WalkError;

    /// Free-form TOML (`toml::Value`): recorded as such, answered with `false`.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        self.recorder
            .accepted
            .borrow_mut()
            .free
            .insert(self.path.to_vec());
        visitor.visit_bool(false)
    }

    placeholders! {
        deserialize_bool => visit_bool(false);
        deserialize_i8 => visit_i64(0);
        deserialize_i16 => visit_i64(0);
        deserialize_i32 => visit_i64(0);
        deserialize_i64 => visit_i64(0);
        deserialize_u8 => visit_u64(0);
        deserialize_u16 => visit_u64(0);
        deserialize_u32 => visit_u64(0);
        deserialize_u64 => visit_u64(0);
        deserialize_f32 => visit_f64(0.0);
        deserialize_f64 => visit_f64(0.0);
        deserialize_char => visit_char('x');
        deserialize_str => visit_str("");
        deserialize_string => visit_str("");
        deserialize_bytes => visit_bytes(&[]);
        deserialize_byte_buf => visit_bytes(&[]);
        deserialize_unit => visit_unit();
        deserialize_identifier => visit_str("");
        deserialize_ignored_any => visit_unit();
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        visitor.visit_some(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        visitor.visit_newtype_struct(self)
    }

    /// A list: one element, at the list's own path (as `[[table]]` writes it).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        visitor.visit_seq(Elements {
            walker: self,
            left: 1,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        visitor.visit_seq(Elements {
            walker: self,
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        self.deserialize_tuple(len, visitor)
    }

    /// A map: one entry named `*`.
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, WalkError> {
        let path = self.child("*", Reached::Entry);
        visitor.visit_map(Entries {
            walker: self,
            keys: &["*"],
            next: 0,
            values: EntryValues::Children(path),
        })
    }

    /// A struct: every field, each recorded; `Spanned<T>` is see-through.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, WalkError> {
        if name == SPANNED {
            return visitor.visit_map(Entries {
                walker: self,
                keys: fields,
                next: 0,
                values: EntryValues::Spanned,
            });
        }
        let paths = fields
            .iter()
            .map(|field| self.child(field, Reached::Field))
            .collect();
        visitor.visit_map(Entries {
            walker: self,
            keys: fields,
            next: 0,
            values: EntryValues::Fields(paths),
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, WalkError> {
        Err(WalkError(format!(
            "enum {name} at {}: the config types hold no enums; teach the walker to list their \
             variants",
            self.path.join(".")
        )))
    }
}

/// The elements of a walked list.
struct Elements<'a> {
    /// The list's walker; each element walks at the same path.
    walker: Walker<'a>,
    /// Elements still to give.
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_> {
    type Error = WalkError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, WalkError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.walker).map(Some)
    }
}

/// What the values of a walked map or struct are.
enum EntryValues {
    /// The fields of a struct: each walks at its own path.
    Fields(Vec<KeyPath>),
    /// The single entry of a map, at this path.
    Children(KeyPath),
    /// `Spanned<T>`: a start and an end offset, then the value at the same path.
    Spanned,
}

/// The entries of a walked map, struct or `Spanned`.
struct Entries<'a> {
    /// The walker of the map itself.
    walker: Walker<'a>,
    /// The keys, in order.
    keys: &'static [&'static str],
    /// The index of the next key.
    next: usize,
    /// Where the values walk.
    values: EntryValues,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = WalkError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WalkError> {
        let Some(key) = self.keys.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(BorrowedStrDeserializer::<WalkError>::new(key))
            .map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, WalkError> {
        let index = self.next;
        self.next += 1;
        let recorder = self.walker.recorder;
        match &self.values {
            EntryValues::Fields(paths) => seed.deserialize(Walker {
                path: &paths[index],
                recorder,
            }),
            EntryValues::Children(path) => seed.deserialize(Walker { path, recorder }),
            EntryValues::Spanned if index < 2 => {
                let offset: UsizeDeserializer<WalkError> = 0usize.into_deserializer();
                seed.deserialize(offset)
            }
            EntryValues::Spanned => seed.deserialize(self.walker),
        }
    }
}

/// Every key path the raw config types accept.
fn accepted() -> Accepted {
    let recorder = Recorder::default();
    let root: KeyPath = Vec::new();
    RawConfig::deserialize(Walker {
        path: &root,
        recorder: &recorder,
    })
    .expect("the walker gives every type of the raw config a value");
    recorder.accepted.into_inner()
}

/// The reserved keys of `[maps.NAME]`, read from the match in `geo.rs`'s `fn map`: every other
/// key there is a location path.
fn reserved_map_keys() -> Vec<String> {
    let start = MAP_CHECKS
        .find("\nfn map(")
        .expect("geo.rs checks [maps.NAME] in `fn map`");
    let body = &MAP_CHECKS[start + 1..];
    let end = body.find("\n}\n").expect("fn map ends");
    body[..end]
        .lines()
        .filter_map(|line| {
            let arm = line.trim().strip_prefix('"')?;
            let (key, rest) = arm.split_once('"')?;
            rest.trim_start().starts_with("=>").then(|| key.to_owned())
        })
        .collect()
}

/// One key the reference documents.
#[derive(Debug, Clone)]
struct Documented {
    /// The key's full path.
    path: KeyPath,
    /// The 1-based line of the reference that documents it.
    line: usize,
}

/// Splits `text` on `.` outside double quotes.
fn split_path(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                parts.last_mut().expect("never empty").push(c);
            }
            '.' if !quoted => parts.push(String::new()),
            c => parts.last_mut().expect("never empty").push(c),
        }
    }
    parts
}

/// One segment of a documented path: a placeholder (`NAME`, `"PATH"`, `N`) becomes `*`.
fn segment(text: &str) -> String {
    let trimmed = text.trim();
    let quoted = trimmed.len() >= 2 && trimmed.starts_with('"') && trimmed.ends_with('"');
    let bare = trimmed.trim_matches('"');
    let capitals = bare.chars().any(|c| c.is_ascii_uppercase())
        && bare
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if quoted || capitals {
        "*".to_owned()
    } else {
        bare.to_owned()
    }
}

/// A documented path from its text (`regions.NAME.monitor`, `asn.N`).
fn key_path(text: &str) -> KeyPath {
    split_path(text).iter().map(|part| segment(part)).collect()
}

/// The spans of `line` written in backticks.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// The section a heading names: `` `[dns]` `` or `` `[[regions.NAME.monitor]]` ``.
fn section(span: &str) -> Option<KeyPath> {
    let inner = span
        .strip_prefix("[[")
        .and_then(|rest| rest.strip_suffix("]]"))
        .or_else(|| {
            span.strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
        })?;
    Some(key_path(inner))
}

/// The cells of a table row, split at unescaped `|`.
fn cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut escaped = false;
    for c in row.trim().trim_start_matches('|').chars() {
        match c {
            '|' if !escaped => cells.push(String::new()),
            c => {
                escaped = c == '\\';
                cells.last_mut().expect("never empty").push(c);
            }
        }
    }
    cells.pop();
    cells
        .into_iter()
        .map(|cell| cell.trim().to_owned())
        .collect()
}

/// Every key `text` documents: the sections its headings name (and their parents), and the
/// rows of its key tables joined to the sections of the heading above them.
fn documented(text: &str) -> Result<Vec<Documented>, String> {
    let mut found = Vec::new();
    let mut sections: Vec<KeyPath> = Vec::new();
    let mut fenced = false;
    let mut table: Option<bool> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if line.starts_with('#') {
            sections = code_spans(line).into_iter().filter_map(section).collect();
            for path in &sections {
                for len in 1..=path.len() {
                    found.push(Documented {
                        path: path[..len].to_vec(),
                        line: number,
                    });
                }
            }
            continue;
        }
        if !line.trim_start().starts_with('|') {
            table = None;
            continue;
        }
        let row = cells(line);
        let Some(is_key_table) = table else {
            let is_key_table = row.first().is_some_and(|cell| cell == "key");
            if is_key_table && sections.is_empty() {
                return Err(format!(
                    "{REFERENCE_PATH}:{number}: a key table under a heading that names no \
                     section; write the section in the heading, e.g. ### `[dns]`"
                ));
            }
            table = Some(is_key_table);
            continue;
        };
        let separator = row
            .iter()
            .all(|cell| !cell.is_empty() && cell.chars().all(|c| matches!(c, '-' | ':')));
        if !is_key_table || separator {
            continue;
        }
        let keys = code_spans(row.first().map(String::as_str).unwrap_or_default());
        if keys.is_empty() {
            return Err(format!(
                "{REFERENCE_PATH}:{number}: a key row without a `key` in its first cell"
            ));
        }
        for key in keys {
            let key = key_path(key);
            for section in &sections {
                // `answers.REGION` documents `answers` too.
                for len in 1..=key.len() {
                    let mut path = section.clone();
                    path.extend_from_slice(&key[..len]);
                    found.push(Documented { path, line: number });
                }
            }
        }
    }
    Ok(found)
}

/// Whether `pattern` covers `path`: as long, and equal wherever `pattern` is not `*`.
fn covers(pattern: &[String], path: &[String]) -> bool {
    pattern.len() == path.len()
        && pattern
            .iter()
            .zip(path)
            .all(|(want, have)| want == "*" || want == have)
}

/// Whether the types accept `path` as documented: a path they list, or a path inside
/// free-form TOML they list.
fn accepts(accepted: &Accepted, path: &[String]) -> bool {
    accepted.paths.keys().any(|pattern| covers(pattern, path))
        || accepted
            .free
            .iter()
            .any(|free| path.len() > free.len() && covers(free, &path[..free.len()]))
}

/// The TOML of the reference's complete example, and the line where it starts.
fn complete_example(text: &str) -> (String, usize) {
    let start = text
        .lines()
        .position(|line| line.trim() == COMPLETE_EXAMPLE_HEADING)
        .unwrap_or_else(|| panic!("{REFERENCE_PATH} has no {COMPLETE_EXAMPLE_HEADING:?}"));
    let mut lines = text.lines().enumerate().skip(start + 1);
    let open = lines
        .by_ref()
        .find(|(_, line)| line.trim() == "```toml")
        .map(|(index, _)| index + 2)
        .expect("the complete example is a ```toml block");
    let body: Vec<&str> = lines
        .map(|(_, line)| line)
        .take_while(|line| line.trim() != "```")
        .collect();
    (body.join("\n") + "\n", open)
}

/// Every key path used in `value` under `prefix`; a list of tables adds its tables' keys at
/// the list's own path.
fn used_paths(prefix: &KeyPath, value: &toml::Value, out: &mut BTreeSet<KeyPath>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let mut path = prefix.clone();
                path.push(key.clone());
                out.insert(path.clone());
                used_paths(&path, value, out);
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                if item.is_table() {
                    used_paths(prefix, item, out);
                }
            }
        }
        _ => {}
    }
}

/// Writes the files the complete example refers to into `dir`: zones for its services, geo
/// databases, the nets file, CA files and the admin token.
fn write_support_files(dir: &Path, example: &toml::Table) {
    let text = |value: &toml::Value| value.as_str().expect("a path is a string").to_owned();
    let at = |path: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).unwrap();
        path
    };
    let zones = dir.join(text(&example["dns"]["zones_dir"]));
    std::fs::create_dir_all(&zones).unwrap();
    let services = example.get("services").and_then(toml::Value::as_table);
    for name in services.into_iter().flat_map(|services| services.keys()) {
        let origin = name.split_once('.').expect("a service name has a parent").1;
        std::fs::write(
            zones.join(format!("{origin}.zone")),
            format!(
                "$ORIGIN {origin}.\n$TTL 300\n@ SOA ns1 hostmaster 1 3600 600 604800 60\n\
                 @ NS ns1\nns1 A 192.0.2.53\n"
            ),
        )
        .unwrap();
    }
    let regions: Vec<&String> = example["regions"]
        .as_table()
        .expect("the example has regions")
        .keys()
        .collect();
    let geo = example.get("geo").and_then(toml::Value::as_table);
    for database in geo
        .and_then(|geo| geo.get("databases"))
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = at(&text(database));
        if path.to_string_lossy().contains("ASN") {
            use crate::geo::mmdb_write::{Value, Writer};
            let mut writer = Writer::new("GeoLite2-ASN");
            let record = Value::Map(vec![
                ("autonomous_system_number".into(), Value::U32(64500)),
                (
                    "autonomous_system_organization".into(),
                    Value::String("Example".into()),
                ),
            ]);
            writer
                .insert("198.51.100.0/24".parse().unwrap(), record)
                .unwrap();
            std::fs::write(&path, writer.to_bytes().unwrap()).unwrap();
        } else {
            let csv = dir.join("locations.csv");
            std::fs::write(
                &csv,
                "network,continent,country,subdivision,city,latitude,longitude,asn\n\
                 81.2.69.0/24,EU,GB,ENG,London,51.5142,-0.0931,\n",
            )
            .unwrap();
            crate::geo::build::build(&csv, &path, None).unwrap();
        }
    }
    if let Some(nets) = geo.and_then(|geo| geo.get("nets")) {
        std::fs::write(at(&text(nets)), format!("192.0.2.0/24,{}\n", regions[0])).unwrap();
    }
    let monitors = example["regions"]
        .as_table()
        .into_iter()
        .flat_map(|regions| regions.values())
        .filter_map(|region| region.get("monitor").and_then(toml::Value::as_array))
        .flatten();
    for monitor in monitors {
        if let Some(ca_file) = monitor.get("ca_file") {
            let generated = rcgen::generate_simple_self_signed(vec!["lb.example.net".into()])
                .expect("a certificate");
            std::fs::write(at(&text(ca_file)), generated.cert.pem()).unwrap();
        }
    }
    if let Some(token) = example
        .get("admin")
        .and_then(|admin| admin.get("token_file"))
    {
        std::fs::write(at(&text(token)), "reference-token\n").unwrap();
    }
}

/// Formats paths for a failure message, one per line.
fn listing<'a>(paths: impl IntoIterator<Item = &'a KeyPath>) -> String {
    paths
        .into_iter()
        .map(|path| format!("  {}", path.join(".")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_walk_lists_nested_keys_through_spanned_options_maps_and_lists() {
    let accepted = accepted();
    let has = |path: &str| {
        let path: KeyPath = path.split('.').map(str::to_owned).collect();
        accepted.paths.contains_key(&path)
    };
    for path in [
        "dns.listen",
        "dns.zones_dir",
        "geo.ecs_max_source_v6",
        "regions.*.monitor.url",
        "regions.*.health.require",
        "services.*.answers.*",
        "balancers.*.backends.addr",
        "balancers.*.backend_sets.*.backends.weight",
        "balancers.*.routes.header.value",
        "admin.token_file",
    ] {
        assert!(
            has(path),
            "{path} missing from:\n{}",
            listing(accepted.paths.keys())
        );
    }
    assert!(!has("dns.bogus"));
    assert_eq!(
        accepted
            .paths
            .get(&vec!["regions".to_owned(), "*".to_owned()]),
        Some(&Reached::Entry)
    );
    assert!(
        accepted
            .free
            .contains(&vec!["maps".to_owned(), "*".to_owned(), "*".to_owned()])
    );
}

#[test]
fn the_reference_parser_joins_rows_to_their_heading_sections() {
    let text = "# Title\n\n### `[[regions.NAME.monitor]]` and `[dns]`\n\n\
                | key | type |\n|---|---|\n| `url` | text |\n| `rise` / `fall` | n |\n\n\
                ```toml\n| `ignored` | in a fence |\n```\n\n### `[maps.NAME]`\n\n\
                | key | meaning |\n|---|---|\n| `\"PATH\"` | a path |\n| `asn.N` | a rule |\n\n\
                | command | what |\n|---|---|\n| `meridian check` | not a key |\n";
    let found: Vec<(String, usize)> = documented(text)
        .unwrap()
        .into_iter()
        .map(|doc| (doc.path.join("."), doc.line))
        .collect();
    let expected = [
        ("regions", 3),
        ("regions.*", 3),
        ("regions.*.monitor", 3),
        ("dns", 3),
        ("regions.*.monitor.url", 7),
        ("dns.url", 7),
        ("regions.*.monitor.rise", 8),
        ("dns.rise", 8),
        ("regions.*.monitor.fall", 8),
        ("dns.fall", 8),
        ("maps", 14),
        ("maps.*", 14),
        ("maps.*.*", 18),
        ("maps.*.asn", 19),
        ("maps.*.asn.*", 19),
    ];
    let expected: Vec<(String, usize)> = expected
        .iter()
        .map(|(path, line)| (path.to_string(), *line))
        .collect();
    assert_eq!(found, expected);

    let orphan = "# Title\n\n| key | type |\n|---|---|\n| `listen` | text |\n";
    let err = documented(orphan).unwrap_err();
    assert!(
        err.starts_with("docs/configuration.md:3: a key table"),
        "{err}"
    );
}

#[test]
fn every_key_the_config_accepts_is_in_the_reference() {
    let accepted = accepted();
    let documented = documented(REFERENCE).unwrap_or_else(|err| panic!("{err}"));
    let missing: Vec<&KeyPath> = accepted
        .paths
        .iter()
        .filter(|(_, reached)| **reached == Reached::Field)
        .map(|(path, _)| path)
        .filter(|path| !documented.iter().any(|doc| covers(path, &doc.path)))
        .collect();
    assert!(
        missing.is_empty(),
        "keys the config accepts but {REFERENCE_PATH} does not document (add a row to the \
         table of their section):\n{}",
        listing(missing)
    );
}

#[test]
fn every_key_the_reference_documents_is_accepted() {
    let accepted = accepted();
    let documented = documented(REFERENCE).unwrap_or_else(|err| panic!("{err}"));
    let unknown: Vec<String> = documented
        .iter()
        .filter(|doc| !accepts(&accepted, &doc.path))
        .map(|doc| format!("  {REFERENCE_PATH}:{}: {}", doc.line, doc.path.join(".")))
        .collect();
    assert!(
        unknown.is_empty(),
        "keys {REFERENCE_PATH} documents but the config rejects:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn every_reserved_map_key_is_in_the_reference() {
    let reserved = reserved_map_keys();
    assert!(
        reserved.iter().any(|key| key == "default"),
        "the reserved keys of [maps.NAME] were not found in geo.rs: {reserved:?}"
    );
    let documented = documented(REFERENCE).unwrap_or_else(|err| panic!("{err}"));
    for key in reserved {
        let path = vec!["maps".to_owned(), "*".to_owned(), key.clone()];
        assert!(
            documented.iter().any(|doc| doc.path.starts_with(&path)),
            "[maps.NAME] accepts {key:?} but {REFERENCE_PATH} does not document it"
        );
    }
}

#[test]
fn the_complete_example_uses_every_documented_key() {
    let (example, line) = complete_example(REFERENCE);
    let table: toml::Table = toml::from_str(&example).unwrap_or_else(|err| {
        panic!("{REFERENCE_PATH}: the complete example (line {line}): {err}")
    });
    let mut used = BTreeSet::new();
    used_paths(&Vec::new(), &toml::Value::Table(table), &mut used);
    let documented = documented(REFERENCE).unwrap_or_else(|err| panic!("{err}"));
    let unused: Vec<String> = documented
        .iter()
        .filter(|doc| !used.iter().any(|path| covers(&doc.path, path)))
        .map(|doc| format!("  {REFERENCE_PATH}:{}: {}", doc.line, doc.path.join(".")))
        .collect();
    assert!(
        unused.is_empty(),
        "documented keys the complete example (line {line}) does not use:\n{}",
        unused.join("\n")
    );
    let accepted = accepted();
    let unused: Vec<&KeyPath> = accepted
        .paths
        .keys()
        .filter(|pattern| !used.iter().any(|path| covers(pattern, path)))
        .collect();
    assert!(
        unused.is_empty(),
        "accepted keys the complete example does not use:\n{}",
        listing(unused)
    );
}

#[test]
fn the_complete_example_loads_through_the_real_loader() {
    let (example, line) = complete_example(REFERENCE);
    let table: toml::Table = toml::from_str(&example).unwrap_or_else(|err| {
        panic!("{REFERENCE_PATH}: the complete example (line {line}): {err}")
    });
    let dir = tempfile::tempdir().unwrap();
    write_support_files(dir.path(), &table);
    let config = dir.path().join("meridian.toml");
    std::fs::write(&config, &example).unwrap();
    if let Err(err) = crate::snapshot::load(&config) {
        panic!(
            "the complete example of {REFERENCE_PATH} (its first line is line {line}) does not \
             load: {err}"
        );
    }
}
