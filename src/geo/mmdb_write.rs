//! Writer for MaxMind DB (MMDB) files, format version 2.0.
//!
//! The writer builds an IPv6 database (`ip_version` 6), the layout MaxMind
//! uses for its own GeoIP2 files:
//!
//! * IPv4 networks live in the IPv6 tree under `::/96`, so `a.b.c.d/n` is
//!   stored as `::a.b.c.d/(96+n)`. The node for `::/96` (the *IPv4 root*) is
//!   always present, so readers always find a real IPv4 subtree; as a
//!   consequence `0.0.0.0/0` is stored (and iterated) as its two `/1` halves.
//! * `::ffff:0:0/96` (IPv4-mapped addresses) is an alias: its record points to
//!   the IPv4 root, so `::ffff:a.b.c.d` resolves like `a.b.c.d`. Networks
//!   inside the alias cannot be inserted ([`WriteError::AliasedNetwork`]);
//!   networks that contain it fill everything around it and leave it alone.
//!   (MaxMind also aliases 6to4 `2002::/16`; this writer does not.)
//!
//! # Override rule
//!
//! Every [`Writer::insert`] assigns its value to *every* address of its
//! network, replacing whatever earlier inserts put there. After all inserts
//! the value of an address is therefore the value of the **last inserted
//! network that contains it**, where an IPv4 network counts as its `::/96`
//! form (so `::/0` covers IPv4 too) and `::ffff:a.b.c.d` counts as
//! `::a.b.c.d`. Inserting in ascending order of prefix length (IPv4 prefixes
//! counted as `96 + n`) thus gives "most specific network wins", and for
//! identical networks the later insert wins. Sorting by (prefix length,
//! network) keeps that order and is also faster (neighbouring inserts share
//! tree paths).
//!
//! # Record size rule
//!
//! Every search-tree record value (a node number, the "no data" value
//! `node_count`, or a data pointer `node_count + 16 + offset`) is below
//! `bound = node_count + 16 + data_section_len`. The writer picks the
//! smallest record size of 24, 28 and 32 bits with `2^bits >= bound`, and
//! fails with [`WriteError::TooLarge`] if even 32 bits are too few.
//!
//! # Data section
//!
//! Identical values are stored once: [`Writer::insert`] encodes each value
//! and keeps one copy per distinct encoding (so `U16(1)` and `U32(1)` differ,
//! floats compare by bit pattern). When the file is written, repeated
//! strings (map keys such as `"iso_code"` included), maps, arrays, byte
//! strings, doubles and 64-bit integers *inside* values are replaced by
//! pointers to their first copy whenever the pointer is shorter.
//!
//! The tree keeps its nodes in one flat `Vec` with two packed 32-bit records
//! per node. Nodes keep their index in the file unless an insert replaced a
//! subtree; then the reachable nodes are renumbered depth-first.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

/// A value in the MMDB data section.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A map from UTF-8 keys to values, written in the given order.
    Map(Vec<(String, Value)>),
    /// A UTF-8 string.
    String(String),
    /// A 64-bit IEEE 754 float.
    Double(f64),
    /// A 32-bit IEEE 754 float.
    Float(f32),
    /// An opaque byte string.
    Bytes(Vec<u8>),
    /// An unsigned 16-bit integer.
    U16(u16),
    /// An unsigned 32-bit integer.
    U32(u32),
    /// An unsigned 64-bit integer.
    U64(u64),
    /// A signed 32-bit integer.
    I32(i32),
    /// A boolean.
    Bool(bool),
    /// An array of values.
    Array(Vec<Value>),
}

/// Errors from building or serialising a database.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The network lies inside `::ffff:0:0/96`, which aliases the IPv4 space.
    #[error(
        "network {0} is inside the IPv4-mapped alias ::ffff:0:0/96; insert the IPv4 network instead"
    )]
    AliasedNetwork(IpNet),
    /// The network address has bits set beyond its prefix length.
    #[error("network {0} has host bits set (expected {network})", network = .0.trunc())]
    HostBitsSet(IpNet),
    /// A single string, byte string, map or array is too big to encode.
    #[error("{what} of {size} bytes/entries is larger than the MMDB maximum of {max}")]
    ValueTooLarge {
        /// What kind of value overflowed.
        what: &'static str,
        /// Its size in bytes or entries.
        size: usize,
        /// The largest size the format can express.
        max: usize,
    },
    /// More distinct values than the writer can index.
    #[error("too many distinct values (limit {limit})", limit = MAX_DATA_INDEX as u64 + 1)]
    TooManyValues,
    /// The tree plus data section do not fit in 32-bit records.
    #[error(
        "database too large for 32-bit records: {nodes} nodes and a {data_bytes}-byte data section"
    )]
    TooLarge {
        /// Number of search-tree nodes.
        nodes: u64,
        /// Length of the data section in bytes.
        data_bytes: u64,
    },
}

/// Size of the all-zero separator between the search tree and the data section.
const DATA_SECTION_SEPARATOR: usize = 16;
/// Marker that starts the metadata section.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
/// Largest size (bytes or entries) a control byte can express.
const MAX_PAYLOAD: usize = 65_821 + 0xFF_FFFF;
/// Depth of the IPv4 root (`::/96`) in the IPv6 tree.
const IPV4_DEPTH: u8 = 96;
/// `::ffff:0:0`, the base of the IPv4-mapped alias network.
const IPV4_MAPPED: u128 = 0xffff_u128 << 32;
/// Largest node index a packed record can hold.
const MAX_NODE_INDEX: u32 = (1 << 31) - 1;
/// Largest distinct-value index a packed record can hold.
const MAX_DATA_INDEX: u32 = (1 << 31) - 3;

/// Type numbers of the MMDB data section.
mod ty {
    /// Pointer into the data section.
    pub const POINTER: u8 = 1;
    /// UTF-8 string.
    pub const STRING: u8 = 2;
    /// 64-bit float.
    pub const DOUBLE: u8 = 3;
    /// Byte string.
    pub const BYTES: u8 = 4;
    /// Unsigned 16-bit integer.
    pub const U16: u8 = 5;
    /// Unsigned 32-bit integer.
    pub const U32: u8 = 6;
    /// Map.
    pub const MAP: u8 = 7;
    /// Signed 32-bit integer.
    pub const I32: u8 = 8;
    /// Unsigned 64-bit integer.
    pub const U64: u8 = 9;
    /// Array.
    pub const ARRAY: u8 = 11;
    /// Boolean.
    pub const BOOL: u8 = 14;
    /// 32-bit float.
    pub const FLOAT: u8 = 15;
}

/// One packed search-tree record: a child node, a value, empty, or the alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec(u32);

/// The decoded meaning of a [`Rec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// No data for this network.
    Empty,
    /// The IPv4-mapped alias; resolves to the IPv4 root when written.
    Alias,
    /// An interior node (index into `Writer::nodes`).
    Node(u32),
    /// A value (index into the distinct-value table).
    Data(u32),
}

impl Rec {
    /// Tag bit that marks a data record.
    const DATA_BIT: u32 = 1 << 31;
    /// The empty record.
    const EMPTY: Rec = Rec(u32::MAX);
    /// The alias record.
    const ALIAS: Rec = Rec(u32::MAX - 1);

    /// A record pointing at node `index`.
    fn node(index: u32) -> Rec {
        Rec(index)
    }

    /// A record pointing at distinct value `index`.
    fn data(index: u32) -> Rec {
        Rec(index | Self::DATA_BIT)
    }

    /// Unpacks the record.
    #[inline]
    fn get(self) -> Slot {
        match self {
            Self::EMPTY => Slot::Empty,
            Self::ALIAS => Slot::Alias,
            Rec(v) if v & Self::DATA_BIT != 0 => Slot::Data(v & !Self::DATA_BIT),
            Rec(v) => Slot::Node(v),
        }
    }
}

/// Builds an IPv6 database (IPv4 networks stored under ::/96, as MaxMind does, plus the ::ffff:0:0/96 alias).
#[derive(Debug, Clone)]
pub struct Writer {
    /// `database_type` metadata field.
    database_type: String,
    /// English `description` metadata field.
    description: String,
    /// `build_epoch` metadata field; `None` means the time of writing.
    build_epoch: Option<u64>,
    /// Search-tree nodes; node 0 is the root.
    nodes: Vec<[Rec; 2]>,
    /// Nodes `0..pinned` form the fixed skeleton (paths to the IPv4 root and
    /// the alias) and are never replaced by inserts.
    pinned: u32,
    /// Index of the IPv4 root node (`::/96`).
    ipv4_root: u32,
    /// Whether an insert replaced a subtree, leaving unreachable nodes.
    orphans: bool,
    /// Encodings (without pointers) of the distinct values, by index.
    values: Vec<Box<[u8]>>,
    /// Indices into `values`, by encoding.
    value_index: HashMap<Box<[u8]>, u32, FastState>,
    /// Scratch buffer for encoding inserted values.
    scratch: Vec<u8>,
    /// Smallest record size to use (24 unless a test forces a larger one).
    min_record_size: u16,
}

impl Writer {
    /// Creates an empty database of the given `database_type` (e.g. "Meridian-City"),
    /// with languages `["en"]` and a default English description.
    pub fn new(database_type: &str) -> Writer {
        let mut nodes: Vec<[Rec; 2]> = Vec::with_capacity(128);
        // Path of zero bits from the root (depth 0) to the IPv4 root (depth 96).
        for depth in 0..IPV4_DEPTH {
            nodes.push([Rec::node(u32::from(depth) + 1), Rec::EMPTY]);
        }
        nodes.push([Rec::EMPTY, Rec::EMPTY]);
        let ipv4_root = u32::from(IPV4_DEPTH);
        // Alias path: shares the first 80 zero bits, then 16 one bits; the
        // record reached by the last bit is the alias.
        let mut node = 80_u32;
        for depth in 80..IPV4_DEPTH {
            let bit = bit_at(IPV4_MAPPED, depth);
            if depth + 1 == IPV4_DEPTH {
                nodes[node as usize][bit] = Rec::ALIAS;
            } else {
                let child = nodes.len() as u32;
                nodes.push([Rec::EMPTY, Rec::EMPTY]);
                nodes[node as usize][bit] = Rec::node(child);
                node = child;
            }
        }
        let pinned = nodes.len() as u32;
        Writer {
            database_type: database_type.to_owned(),
            description: format!("{database_type} database"),
            build_epoch: None,
            nodes,
            pinned,
            ipv4_root,
            orphans: false,
            values: Vec::new(),
            value_index: HashMap::default(),
            scratch: Vec::new(),
            min_record_size: 24,
        }
    }

    /// Sets the English (`"en"`) description written to the metadata.
    pub fn description(&mut self, text: &str) {
        text.clone_into(&mut self.description);
    }

    /// Sets the `build_epoch` metadata (seconds since the Unix epoch) for
    /// reproducible output; by default the time of [`Writer::to_bytes`] is used.
    pub fn build_epoch(&mut self, seconds: u64) {
        self.build_epoch = Some(seconds);
    }

    /// Forces a record size of at least `bits` (24, 28 or 32), to test the
    /// wider layouts without building huge trees.
    #[cfg(test)]
    fn force_record_size(&mut self, bits: u16) {
        self.min_record_size = bits;
    }

    /// Assigns `value` to every address in `network`, replacing earlier inserts
    /// there (see the module docs for the exact rule).
    ///
    /// IPv4 networks are stored under `::/96`. Networks with host bits set,
    /// IPv6 networks inside `::ffff:0:0/96` and values too big to encode are
    /// rejected, leaving the database unchanged.
    pub fn insert(&mut self, network: IpNet, value: Value) -> Result<(), WriteError> {
        if network.trunc() != network {
            return Err(WriteError::HostBitsSet(network));
        }
        let (addr, prefix) = match network {
            IpNet::V4(n) => (u128::from(u32::from(n.addr())), IPV4_DEPTH + n.prefix_len()),
            IpNet::V6(n) => {
                let addr = u128::from(n.addr());
                if n.prefix_len() >= IPV4_DEPTH && addr >> 32 == IPV4_MAPPED >> 32 {
                    return Err(WriteError::AliasedNetwork(network));
                }
                (addr, n.prefix_len())
            }
        };
        let index = self.intern(&value)?;
        let data = Rec::data(index);
        if prefix == 0 {
            self.fill(0, 0, data);
            self.fill(0, 1, data);
            return Ok(());
        }
        // IPv4 networks start at the IPv4 root: the path to it is pinned.
        let (mut node, start) = if prefix > IPV4_DEPTH && addr >> 32 == 0 {
            (self.ipv4_root, IPV4_DEPTH)
        } else {
            (0, 0)
        };
        for depth in start..prefix - 1 {
            let bit = bit_at(addr, depth);
            let rec = self.nodes[node as usize][bit];
            node = match rec.get() {
                Slot::Node(child) => child,
                // The whole network already has this value.
                Slot::Data(existing) if existing == index => return Ok(()),
                Slot::Data(_) | Slot::Empty => {
                    let child = self.push_node([rec, rec])?;
                    self.nodes[node as usize][bit] = Rec::node(child);
                    child
                }
                // Unreachable: the alias sits at depth 96 and networks inside
                // it were rejected above.
                Slot::Alias => return Err(WriteError::AliasedNetwork(network)),
            };
        }
        self.fill(node, bit_at(addr, prefix - 1), data);
        Ok(())
    }

    /// Returns the index of `value` in the distinct-value table, adding it if new.
    fn intern(&mut self, value: &Value) -> Result<u32, WriteError> {
        self.scratch.clear();
        encode(&mut self.scratch, value)?;
        if let Some(&index) = self.value_index.get(self.scratch.as_slice()) {
            return Ok(index);
        }
        let index = u32::try_from(self.values.len())
            .ok()
            .filter(|&i| i <= MAX_DATA_INDEX)
            .ok_or(WriteError::TooManyValues)?;
        let bytes: Box<[u8]> = self.scratch.as_slice().into();
        match self.value_index.entry(bytes.clone()) {
            Entry::Occupied(e) => Ok(*e.get()),
            Entry::Vacant(e) => {
                e.insert(index);
                self.values.push(bytes);
                Ok(index)
            }
        }
    }

    /// Appends a node and returns its index.
    fn push_node(&mut self, records: [Rec; 2]) -> Result<u32, WriteError> {
        let index = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&i| i <= MAX_NODE_INDEX)
            .ok_or_else(|| too_large(self.nodes.len(), 0))?;
        self.nodes.push(records);
        Ok(index)
    }

    /// Sets the whole network of record `bit` of `node` to `data`, keeping
    /// the pinned skeleton (descending into it) and the alias record.
    fn fill(&mut self, node: u32, bit: usize, data: Rec) {
        match self.nodes[node as usize][bit].get() {
            Slot::Alias => {}
            Slot::Node(child) if child < self.pinned => {
                self.fill(child, 0, data);
                self.fill(child, 1, data);
            }
            old => {
                self.orphans |= matches!(old, Slot::Node(_));
                self.nodes[node as usize][bit] = data;
            }
        }
    }

    /// Depth-first (pre-order) list of the reachable nodes, and the new
    /// index of each node (`u32::MAX` for unreachable ones).
    fn reachable_nodes(&self) -> (Vec<u32>, Vec<u32>) {
        let mut new_id = vec![u32::MAX; self.nodes.len()];
        let mut order: Vec<u32> = Vec::with_capacity(self.nodes.len());
        let mut stack: Vec<u32> = vec![0];
        while let Some(n) = stack.pop() {
            new_id[n as usize] = order.len() as u32;
            order.push(n);
            let [left, right] = self.nodes[n as usize];
            if let Slot::Node(c) = right.get() {
                stack.push(c);
            }
            if let Slot::Node(c) = left.get() {
                stack.push(c);
            }
        }
        (order, new_id)
    }

    /// Serialises the whole database file: search tree, data section and metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>, WriteError> {
        // Without orphans every node is reachable and keeps its index (node 0
        // is the root); otherwise renumber the reachable nodes.
        let renumbered = self.orphans.then(|| self.reachable_nodes());
        let node_count = renumbered
            .as_ref()
            .map_or(self.nodes.len(), |(order, _)| order.len());
        let node_at = |i: usize| -> [Rec; 2] {
            match &renumbered {
                Some((order, _)) => self.nodes[order[i] as usize],
                None => self.nodes[i],
            }
        };
        let id_of = |n: u32| -> u32 {
            match &renumbered {
                Some((_, new_id)) => new_id[n as usize],
                None => n,
            }
        };

        // Data section: each referenced value once, in tree order.
        let mut offsets = vec![u32::MAX; self.values.len()];
        let mut data = DataWriter::default();
        for i in 0..node_count {
            for rec in node_at(i) {
                if let Slot::Data(d) = rec.get()
                    && offsets[d as usize] == u32::MAX
                {
                    let offset = data.place(&self.values[d as usize]);
                    offsets[d as usize] =
                        u32::try_from(offset).map_err(|_| too_large(node_count, data.out.len()))?;
                }
            }
        }
        let data_len = data.out.len();

        let bound = (node_count as u64) + (DATA_SECTION_SEPARATOR as u64) + (data_len as u64);
        let record_size = choose_record_size(bound)
            .map(|bits| bits.max(self.min_record_size))
            .ok_or_else(|| too_large(node_count, data_len))?;
        let node_count_u32 =
            u32::try_from(node_count).map_err(|_| too_large(node_count, data_len))?;

        let alias_target = id_of(self.ipv4_root);
        let data_base = node_count_u32 + DATA_SECTION_SEPARATOR as u32;
        // Every result is below `bound`, which fits the record size.
        let resolve = |rec: Rec| -> u32 {
            match rec.get() {
                Slot::Empty => node_count_u32,
                Slot::Alias => alias_target,
                Slot::Node(c) => id_of(c),
                Slot::Data(d) => data_base + offsets[d as usize],
            }
        };

        let node_bytes = usize::from(record_size) / 4;
        let mut out =
            Vec::with_capacity(node_count * node_bytes + DATA_SECTION_SEPARATOR + data_len + 512);
        for i in 0..node_count {
            let [left, right] = node_at(i);
            let (l, r) = (resolve(left).to_be_bytes(), resolve(right).to_be_bytes());
            match record_size {
                24 => {
                    out.extend_from_slice(&l[1..]);
                    out.extend_from_slice(&r[1..]);
                }
                28 => {
                    out.extend_from_slice(&l[1..]);
                    out.push((l[0] << 4) | (r[0] & 0x0F));
                    out.extend_from_slice(&r[1..]);
                }
                _ => {
                    out.extend_from_slice(&l);
                    out.extend_from_slice(&r);
                }
            }
        }
        out.resize(out.len() + DATA_SECTION_SEPARATOR, 0);
        out.extend_from_slice(&data.out);
        out.extend_from_slice(METADATA_MARKER);

        let build_epoch = self.build_epoch.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
        let metadata = Value::Map(vec![
            ("binary_format_major_version".into(), Value::U16(2)),
            ("binary_format_minor_version".into(), Value::U16(0)),
            ("build_epoch".into(), Value::U64(build_epoch)),
            (
                "database_type".into(),
                Value::String(self.database_type.clone()),
            ),
            (
                "description".into(),
                Value::Map(vec![("en".into(), Value::String(self.description.clone()))]),
            ),
            ("ip_version".into(), Value::U16(6)),
            (
                "languages".into(),
                Value::Array(vec![Value::String("en".into())]),
            ),
            ("node_count".into(), Value::U32(node_count_u32)),
            ("record_size".into(), Value::U16(record_size)),
        ]);
        // Pointers in the metadata would be relative to the metadata section;
        // `encode` writes none.
        encode(&mut out, &metadata)?;
        Ok(out)
    }
}

/// The error for a database whose records would not fit in 32 bits.
fn too_large(nodes: usize, data_bytes: usize) -> WriteError {
    WriteError::TooLarge {
        nodes: nodes as u64,
        data_bytes: data_bytes as u64,
    }
}

/// Smallest record size (24, 28 or 32 bits) that can hold every value below
/// `bound`, or `None` if it needs more than 32 bits.
fn choose_record_size(bound: u64) -> Option<u16> {
    [24_u16, 28, 32]
        .into_iter()
        .find(|&bits| bound <= (1_u64 << bits))
}

/// Bit `depth` (0 = most significant) of a 128-bit address, as a record index.
#[inline]
fn bit_at(addr: u128, depth: u8) -> usize {
    ((addr >> (127 - u32::from(depth))) & 1) as usize
}

/// Appends the plain encoding of `value` (no pointers) to `out`.
fn encode(out: &mut Vec<u8>, value: &Value) -> Result<(), WriteError> {
    match value {
        Value::Map(entries) => {
            put_control(out, ty::MAP, entries.len(), "map")?;
            for (key, v) in entries {
                put_control(out, ty::STRING, key.len(), "string")?;
                out.extend_from_slice(key.as_bytes());
                encode(out, v)?;
            }
        }
        Value::String(s) => {
            put_control(out, ty::STRING, s.len(), "string")?;
            out.extend_from_slice(s.as_bytes());
        }
        Value::Double(d) => {
            put_control(out, ty::DOUBLE, 8, "double")?;
            out.extend_from_slice(&d.to_be_bytes());
        }
        Value::Float(f) => {
            put_control(out, ty::FLOAT, 4, "float")?;
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Bytes(b) => {
            put_control(out, ty::BYTES, b.len(), "bytes")?;
            out.extend_from_slice(b);
        }
        Value::U16(v) => put_uint(out, ty::U16, u64::from(*v))?,
        Value::U32(v) => put_uint(out, ty::U32, u64::from(*v))?,
        Value::U64(v) => put_uint(out, ty::U64, *v)?,
        Value::I32(v) => {
            if *v >= 0 {
                put_uint(out, ty::I32, u64::from(v.unsigned_abs()))?;
            } else {
                // Readers zero-extend short int32s, so negatives need all 4 bytes.
                put_control(out, ty::I32, 4, "int32")?;
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        Value::Bool(v) => put_control(out, ty::BOOL, usize::from(*v), "bool")?,
        Value::Array(items) => {
            put_control(out, ty::ARRAY, items.len(), "array")?;
            for v in items {
                encode(out, v)?;
            }
        }
    }
    Ok(())
}

/// Writes a control byte (plus extended-type and size bytes) for `type_num`
/// with payload size `size`.
fn put_control(
    out: &mut Vec<u8>,
    type_num: u8,
    size: usize,
    what: &'static str,
) -> Result<(), WriteError> {
    let (size_code, extra): (u8, &[u8]) = match size {
        0..29 => (size as u8, &[]),
        29..285 => (29, &[(size - 29) as u8]),
        285..65_821 => (30, &((size - 285) as u16).to_be_bytes()),
        _ if size <= MAX_PAYLOAD => (31, &((size - 65_821) as u32).to_be_bytes()[1..]),
        _ => {
            return Err(WriteError::ValueTooLarge {
                what,
                size,
                max: MAX_PAYLOAD,
            });
        }
    };
    if type_num <= 7 {
        out.push((type_num << 5) | size_code);
    } else {
        out.push(size_code);
        out.push(type_num - 7);
    }
    out.extend_from_slice(extra);
    Ok(())
}

/// Writes an unsigned integer of `type_num` using the fewest big-endian bytes.
fn put_uint(out: &mut Vec<u8>, type_num: u8, value: u64) -> Result<(), WriteError> {
    let bytes = value.to_be_bytes();
    let skip = (value.leading_zeros() / 8) as usize;
    put_control(out, type_num, 8 - skip, "integer")?;
    out.extend_from_slice(&bytes[skip..]);
    Ok(())
}

/// Reads the control byte(s) of the item at `pos` of a plain encoding made by
/// [`encode`]: `(type number, size, header length)`.
fn read_header(src: &[u8], pos: usize) -> (u8, usize, usize) {
    let control = src[pos];
    let mut p = pos + 1;
    let mut type_num = control >> 5;
    if type_num == 0 {
        type_num = 7 + src[p];
        p += 1;
    }
    let size = match control & 0x1F {
        code @ 0..29 => usize::from(code),
        29 => {
            p += 1;
            29 + usize::from(src[p - 1])
        }
        30 => {
            p += 2;
            285 + (usize::from(src[p - 2]) << 8 | usize::from(src[p - 1]))
        }
        _ => {
            p += 3;
            65_821
                + (usize::from(src[p - 3]) << 16
                    | usize::from(src[p - 2]) << 8
                    | usize::from(src[p - 1]))
        }
    };
    (type_num, size, p - pos)
}

/// End offset of the item at `pos` of a plain encoding made by [`encode`].
fn item_end(src: &[u8], pos: usize) -> usize {
    let (type_num, size, header) = read_header(src, pos);
    let mut p = pos + header;
    match type_num {
        ty::MAP => (0..2 * size).for_each(|_| p = item_end(src, p)),
        ty::ARRAY => (0..size).for_each(|_| p = item_end(src, p)),
        ty::BOOL => {}
        _ => p += size,
    }
    p
}

/// Where an item was written inline, for pointer reuse.
#[derive(Debug, Clone, Copy)]
struct Placed<'a> {
    /// The item's plain encoding.
    item: &'a [u8],
    /// Offset of its copy in the section.
    offset: usize,
    /// Length of that copy.
    len: usize,
}

/// Builds the data section from plain encodings, replacing repeated items
/// with pointers to their first copy.
#[derive(Debug, Default)]
struct DataWriter<'a> {
    /// The section written so far.
    out: Vec<u8>,
    /// Items written inline so far, by hash of their plain encoding (the
    /// first item wins on a hash collision; lookups compare the bytes).
    placed: HashMap<u64, Placed<'a>, FastState>,
}

impl<'a> DataWriter<'a> {
    /// Writes a top-level value (a plain encoding) inline and returns its
    /// offset. Top-level values are already distinct, so they are not looked up.
    fn place(&mut self, value: &'a [u8]) -> usize {
        let start = self.out.len();
        self.write_inline(value, 0);
        start
    }

    /// Writes the item at `pos` of `src`, as a pointer to an earlier copy when
    /// that is shorter, and returns the item's end in `src`.
    fn write(&mut self, src: &'a [u8], pos: usize) -> usize {
        let type_num = read_header(src, pos).0;
        if !matches!(
            type_num,
            ty::STRING | ty::BYTES | ty::MAP | ty::ARRAY | ty::DOUBLE | ty::U64
        ) {
            return self.write_inline(src, pos);
        }
        let end = item_end(src, pos);
        let item = &src[pos..end];
        if item.len() <= 2 {
            // No pointer is shorter.
            return self.write_inline(src, pos);
        }
        let hash = FastState::default().hash_one(item);
        if let Some(p) = self.placed.get(&hash)
            && pointer_len(p.offset) < p.len
            && p.item == item
        {
            put_pointer(&mut self.out, p.offset);
            return end;
        }
        let start = self.out.len();
        self.write_inline(src, pos);
        let len = self.out.len() - start;
        self.placed.entry(hash).or_insert(Placed {
            item,
            offset: start,
            len,
        });
        end
    }

    /// Writes the item at `pos` of `src` itself (children of maps and arrays
    /// may become pointers) and returns the item's end in `src`.
    fn write_inline(&mut self, src: &'a [u8], pos: usize) -> usize {
        let (type_num, size, header) = read_header(src, pos);
        let mut p = pos + header;
        let children = match type_num {
            ty::MAP => 2 * size,
            ty::ARRAY => size,
            _ => {
                let end = item_end(src, pos);
                self.out.extend_from_slice(&src[pos..end]);
                return end;
            }
        };
        self.out.extend_from_slice(&src[pos..p]);
        for _ in 0..children {
            p = self.write(src, p);
        }
        p
    }
}

/// Length of a pointer encoding to `offset`.
fn pointer_len(offset: usize) -> usize {
    match offset {
        0..2048 => 2,
        2048..526_336 => 3,
        526_336..134_744_064 => 4,
        _ => 5,
    }
}

/// Writes a pointer to `offset` in the data section.
fn put_pointer(out: &mut Vec<u8>, offset: usize) {
    let control = ty::POINTER << 5;
    match offset {
        0..2048 => {
            out.push(control | ((offset >> 8) as u8 & 0x07));
            out.push(offset as u8);
        }
        2048..526_336 => {
            let v = offset - 2048;
            out.push(control | 0x08 | ((v >> 16) as u8 & 0x07));
            out.extend_from_slice(&(v as u32).to_be_bytes()[2..]);
        }
        526_336..134_744_064 => {
            let v = offset - 526_336;
            out.push(control | 0x10 | ((v >> 24) as u8 & 0x07));
            out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
        }
        _ => {
            out.push(control | 0x18);
            // Offsets beyond u32 are rejected before records are written.
            out.extend_from_slice(&(offset as u32).to_be_bytes());
        }
    }
}

/// Hasher state for the writer's internal tables.
type FastState = BuildHasherDefault<FastHasher>;

/// A fast non-cryptographic hasher (FxHash-style multiply-rotate with a
/// murmur3 finaliser); the inputs are the operator's own data, so flooding
/// resistance is not needed.
#[derive(Debug, Default, Clone, Copy)]
struct FastHasher(u64);

impl FastHasher {
    /// Mixes one 64-bit word into the state.
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0_u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0_u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maxminddb::{Reader, WithinOptions, geoip2};
    use proptest::prelude::*;
    use serde::Deserialize;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// Parses a network literal.
    fn net(s: &str) -> IpNet {
        s.parse().expect("test network literal")
    }

    /// Parses an address literal.
    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address literal")
    }

    /// A City-shaped value for tests.
    fn city(continent: &str, country: &str, name: &str, lat: f64, lon: f64) -> Value {
        Value::Map(vec![
            (
                "continent".into(),
                Value::Map(vec![("code".into(), Value::String(continent.into()))]),
            ),
            (
                "country".into(),
                Value::Map(vec![("iso_code".into(), Value::String(country.into()))]),
            ),
            (
                "city".into(),
                Value::Map(vec![(
                    "names".into(),
                    Value::Map(vec![("en".into(), Value::String(name.into()))]),
                )]),
            ),
            (
                "location".into(),
                Value::Map(vec![
                    ("latitude".into(), Value::Double(lat)),
                    ("longitude".into(), Value::Double(lon)),
                ]),
            ),
        ])
    }

    /// Writes the database and opens it with the real reader, after verifying it.
    fn open(w: &Writer) -> Reader<Vec<u8>> {
        let bytes = w.to_bytes().expect("write database");
        let reader = Reader::from_source(bytes).expect("reader accepts database");
        reader.verify().expect("database verifies");
        reader
    }

    /// Looks `addr` up and decodes a `u32` value, `None` when there is no data.
    fn lookup_u32(r: &Reader<Vec<u8>>, addr: IpAddr) -> Option<u32> {
        r.lookup(addr)
            .expect("lookup")
            .decode::<u32>()
            .expect("decode u32")
    }

    /// The English city name found for `addr`.
    fn city_name(r: &Reader<Vec<u8>>, addr: &str) -> Option<String> {
        let result = r.lookup(ip(addr)).expect("lookup");
        let city: Option<geoip2::City> = result.decode().expect("decode City");
        city.and_then(|c| c.city.names.english.map(str::to_owned))
    }

    /// All networks the reader iterates (default options), with their `u32` values.
    fn networks_u32(r: &Reader<Vec<u8>>) -> Vec<(IpNet, u32)> {
        let mut out = Vec::new();
        for item in r.networks(WithinOptions::default()).expect("networks") {
            let item = item.expect("network item");
            let network: IpNet = item
                .network()
                .expect("network")
                .to_string()
                .parse()
                .expect("ipnet parse");
            let value = item.decode::<u32>().expect("decode").expect("has data");
            out.push((network, value));
        }
        out
    }

    /// The same address as `::a.b.c.d` and `::ffff:a.b.c.d`.
    fn v6_forms(v4: Ipv4Addr) -> [IpAddr; 2] {
        let n = u128::from(u32::from(v4));
        [
            IpAddr::V6(Ipv6Addr::from(n)),
            IpAddr::V6(Ipv6Addr::from(n | IPV4_MAPPED)),
        ]
    }

    #[test]
    fn round_trip_city_values_ipv4_and_ipv6() {
        let mut w = Writer::new("Meridian-City");
        w.description("test database");
        w.build_epoch(1_700_000_000);
        let cases = [
            ("10.0.0.0/8", "Ten"),
            ("81.2.69.142/31", "London"),
            ("81.2.69.144/28", "London2"),
            ("192.0.2.1/32", "Host"),
            ("198.51.100.0/24", "Doc"),
            ("128.0.0.0/1", "UpperHalf"),
            ("2001:db8::/32", "DocV6"),
            ("2001:db8:1::/48", "DocV6-48"),
            ("2a00::/12", "EuropeV6"),
            ("2600:1f00::/24", "Cloud"),
            ("2001:db8:1:2::5/128", "HostV6"),
            ("fe80::/10", "LinkLocal"),
        ];
        let mut sorted: Vec<_> = cases.iter().map(|(n, c)| (net(n), *c)).collect();
        sorted
            .sort_by_key(|(n, _)| n.prefix_len() + if matches!(n, IpNet::V4(_)) { 96 } else { 0 });
        for (n, name) in &sorted {
            w.insert(*n, city("EU", "GB", name, 51.5, -0.1))
                .expect("insert");
        }
        let r = open(&w);
        // Upper half is overridden by more specific networks inside it.
        assert_eq!(city_name(&r, "10.1.2.3").as_deref(), Some("Ten"));
        assert_eq!(city_name(&r, "9.255.255.255"), None);
        assert_eq!(city_name(&r, "11.0.0.0"), None);
        assert_eq!(city_name(&r, "81.2.69.142").as_deref(), Some("London"));
        assert_eq!(city_name(&r, "81.2.69.143").as_deref(), Some("London"));
        assert_eq!(city_name(&r, "81.2.69.141"), None);
        assert_eq!(city_name(&r, "81.2.69.159").as_deref(), Some("London2"));
        assert_eq!(city_name(&r, "81.2.69.160"), None);
        assert_eq!(city_name(&r, "192.0.2.1").as_deref(), Some("Host"));
        assert_eq!(city_name(&r, "192.0.2.2").as_deref(), Some("UpperHalf"));
        assert_eq!(city_name(&r, "198.51.100.255").as_deref(), Some("Doc"));
        assert_eq!(
            city_name(&r, "255.255.255.255").as_deref(),
            Some("UpperHalf")
        );
        assert_eq!(city_name(&r, "2001:db8::1").as_deref(), Some("DocV6"));
        assert_eq!(city_name(&r, "2001:db8:1::1").as_deref(), Some("DocV6-48"));
        assert_eq!(city_name(&r, "2001:db8:1:2::5").as_deref(), Some("HostV6"));
        assert_eq!(
            city_name(&r, "2001:db8:1:2::6").as_deref(),
            Some("DocV6-48")
        );
        assert_eq!(city_name(&r, "2001:db9::"), None);
        assert_eq!(city_name(&r, "2a0f:ffff::1").as_deref(), Some("EuropeV6"));
        assert_eq!(city_name(&r, "2a10::"), None);
        assert_eq!(city_name(&r, "2600:1fff::1").as_deref(), Some("Cloud"));
        assert_eq!(city_name(&r, "febf::1").as_deref(), Some("LinkLocal"));
        assert_eq!(city_name(&r, "fec0::1"), None);
        assert_eq!(city_name(&r, "::1"), None);
        // IPv4 lookups work as ::a.b.c.d and ::ffff:a.b.c.d too.
        for a in [
            "10.1.2.3",
            "81.2.69.142",
            "81.2.69.141",
            "192.0.2.1",
            "200.1.1.1",
            "1.1.1.1",
        ] {
            let v4: Ipv4Addr = a.parse().expect("v4");
            let expect = city_name(&r, a);
            for form in v6_forms(v4) {
                assert_eq!(city_name(&r, &form.to_string()), expect, "{form}");
            }
        }
        // Full decode of one value.
        let result = r.lookup(ip("81.2.69.142")).expect("lookup");
        assert_eq!(result.network().expect("net").to_string(), "81.2.69.142/31");
        let c: geoip2::City = result.decode().expect("decode").expect("data");
        assert_eq!(c.continent.code, Some("EU"));
        assert_eq!(c.country.iso_code, Some("GB"));
        assert_eq!(c.location.latitude, Some(51.5));
        assert_eq!(c.location.longitude, Some(-0.1));
        let result = r.lookup(ip("2001:db8:1:2::5")).expect("lookup");
        assert_eq!(
            result.network().expect("net").to_string(),
            "2001:db8:1:2::5/128"
        );
    }

    #[test]
    fn metadata_fields() {
        let mut w = Writer::new("Meridian-City");
        w.description("Meridian test");
        w.build_epoch(1_234_567);
        w.insert(net("1.2.3.0/24"), Value::U32(1)).expect("insert");
        let r = open(&w);
        let m = r.metadata();
        assert_eq!(m.binary_format_major_version, 2);
        assert_eq!(m.binary_format_minor_version, 0);
        assert_eq!(m.build_epoch, 1_234_567);
        assert_eq!(m.database_type, "Meridian-City");
        assert_eq!(m.ip_version, 6);
        assert_eq!(m.languages, vec!["en".to_owned()]);
        assert_eq!(
            m.description.get("en").map(String::as_str),
            Some("Meridian test")
        );
        assert_eq!(m.record_size, 24);
        // Skeleton: 97 nodes to the IPv4 root, 15 for the alias path, plus
        // 24 nodes under the IPv4 root for the /24 (its last record is data).
        assert_eq!(m.node_count, 97 + 15 + 23);
        // Default epoch is "now".
        let w = Writer::new("X");
        let r = open(&w);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        assert!(r.metadata().build_epoch + 60 > now);
        assert_eq!(
            r.metadata().description.get("en").map(String::as_str),
            Some("X database")
        );
    }

    #[test]
    fn networks_iteration_returns_inserted_networks_after_overrides() {
        let mut w = Writer::new("Test");
        let inserts = [
            ("10.0.0.0/8", 1),
            ("10.128.0.0/9", 2),
            ("10.1.0.0/16", 3),
            ("10.1.2.0/24", 4),
            ("192.168.0.0/16", 5),
            ("2001:db8::/32", 6),
            ("2001:db8:8000::/33", 7),
            ("2001:db8::/34", 8),
            ("fc00::/7", 9),
        ];
        for (n, v) in inserts {
            w.insert(net(n), Value::U32(v)).expect("insert");
        }
        let r = open(&w);
        let mut got = networks_u32(&r);
        got.sort();
        let mut expected: Vec<(IpNet, u32)> = [
            // 10.0.0.0/8 minus 10.128/9 and 10.1/16, minus 10.1.2/24 in 10.1/16.
            ("10.0.0.0/16", 1),
            ("10.1.0.0/23", 3),
            ("10.1.2.0/24", 4),
            ("10.1.3.0/24", 3),
            ("10.1.4.0/22", 3),
            ("10.1.8.0/21", 3),
            ("10.1.16.0/20", 3),
            ("10.1.32.0/19", 3),
            ("10.1.64.0/18", 3),
            ("10.1.128.0/17", 3),
            ("10.2.0.0/15", 1),
            ("10.4.0.0/14", 1),
            ("10.8.0.0/13", 1),
            ("10.16.0.0/12", 1),
            ("10.32.0.0/11", 1),
            ("10.64.0.0/10", 1),
            ("10.128.0.0/9", 2),
            ("192.168.0.0/16", 5),
            ("2001:db8::/34", 8),
            ("2001:db8:4000::/34", 6),
            ("2001:db8:8000::/33", 7),
            ("fc00::/7", 9),
        ]
        .iter()
        .map(|(n, v)| (net(n), *v))
        .collect();
        expected.sort();
        assert_eq!(got, expected);

        // `within` on a sub-range.
        let mut sub = Vec::new();
        for item in r
            .within(
                "10.1.0.0/22".parse().expect("cidr"),
                WithinOptions::default(),
            )
            .expect("within")
        {
            let item = item.expect("item");
            sub.push(item.network().expect("net").to_string());
        }
        assert_eq!(sub, vec!["10.1.0.0/23", "10.1.2.0/24", "10.1.3.0/24"]);
    }

    #[test]
    fn later_inserts_override_earlier_ones() {
        let mut w = Writer::new("Test");
        w.insert(net("10.1.2.0/24"), Value::U32(1)).expect("insert");
        w.insert(net("10.1.2.128/25"), Value::U32(2))
            .expect("insert");
        // Less specific, later: replaces both.
        w.insert(net("10.1.0.0/16"), Value::U32(3)).expect("insert");
        w.insert(net("10.1.2.64/26"), Value::U32(4))
            .expect("insert");
        // Identical network, later: wins.
        w.insert(net("10.9.0.0/16"), Value::U32(5)).expect("insert");
        w.insert(net("10.9.0.0/16"), Value::U32(6)).expect("insert");
        // Same value inside a network that already has it: no split.
        w.insert(net("10.9.1.0/24"), Value::U32(6)).expect("insert");
        let r = open(&w);
        assert_eq!(lookup_u32(&r, ip("10.1.2.1")), Some(3));
        assert_eq!(lookup_u32(&r, ip("10.1.2.200")), Some(3));
        assert_eq!(lookup_u32(&r, ip("10.1.2.65")), Some(4));
        assert_eq!(lookup_u32(&r, ip("10.9.1.1")), Some(6));
        let nets = networks_u32(&r);
        assert!(nets.contains(&(net("10.9.0.0/16"), 6)), "{nets:?}");
        assert_eq!(nets.iter().filter(|(_, v)| *v == 3).count(), 10);
        // The nodes under the replaced /24 are not written: the skeleton
        // (112), 15 nodes down to 10.1.0.0/16, 10 more down to 10.1.2.64/26,
        // and 3 where 10.9.0.0/16 branches off at 10.0.0.0/12.
        assert!(w.orphans);
        assert_eq!(r.metadata().node_count, 112 + 15 + 10 + 3);
    }

    #[test]
    fn zero_length_networks() {
        // ::/0 covers IPv4 (::/96) too; the alias keeps following IPv4.
        let mut w = Writer::new("Test");
        w.insert(net("::/0"), Value::U32(1)).expect("insert");
        w.insert(net("0.0.0.0/0"), Value::U32(2)).expect("insert");
        w.insert(net("1.0.0.0/8"), Value::U32(3)).expect("insert");
        let r = open(&w);
        assert_eq!(lookup_u32(&r, ip("2001:db8::1")), Some(1));
        assert_eq!(lookup_u32(&r, ip("::1:0:0:1")), Some(1));
        assert_eq!(lookup_u32(&r, ip("::fffe:0:0")), Some(1));
        assert_eq!(
            lookup_u32(&r, ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            Some(1)
        );
        assert_eq!(lookup_u32(&r, ip("8.8.8.8")), Some(2));
        assert_eq!(lookup_u32(&r, ip("::8.8.8.8")), Some(2));
        assert_eq!(lookup_u32(&r, ip("::ffff:8.8.8.8")), Some(2));
        assert_eq!(lookup_u32(&r, ip("1.2.3.4")), Some(3));
        assert_eq!(lookup_u32(&r, ip("::ffff:1.2.3.4")), Some(3));
        // The IPv4 root is a real node, so 0.0.0.0/0 shows as two halves.
        let nets = networks_u32(&r);
        assert!(nets.contains(&(net("64.0.0.0/2"), 2)), "{nets:?}");
        assert!(nets.contains(&(net("128.0.0.0/1"), 2)), "{nets:?}");
        assert!(nets.contains(&(net("8000::/1"), 1)), "{nets:?}");

        // Only ::/0: IPv4 addresses get its value through ::/96 and the alias.
        let mut w = Writer::new("Test");
        w.insert(net("::/0"), Value::U32(7)).expect("insert");
        let r = open(&w);
        assert_eq!(lookup_u32(&r, ip("8.8.8.8")), Some(7));
        assert_eq!(lookup_u32(&r, ip("::ffff:8.8.8.8")), Some(7));
        assert_eq!(lookup_u32(&r, ip("2001::")), Some(7));

        // Only 0.0.0.0/0: no IPv6 data outside ::/96 and the alias.
        let mut w = Writer::new("Test");
        w.insert(net("0.0.0.0/0"), Value::U32(8)).expect("insert");
        let r = open(&w);
        assert_eq!(lookup_u32(&r, ip("8.8.8.8")), Some(8));
        assert_eq!(lookup_u32(&r, ip("::ffff:8.8.8.8")), Some(8));
        assert_eq!(lookup_u32(&r, ip("2001::")), None);
        assert_eq!(lookup_u32(&r, ip("::1:0:0:1")), None);
    }

    #[test]
    fn ipv6_networks_around_the_alias() {
        let mut w = Writer::new("Test");
        w.insert(net("1.2.3.0/24"), Value::U32(1)).expect("insert");
        // Contains ::ffff:0:0/96: fills around it, keeps the alias.
        w.insert(net("::fffe:0:0/95"), Value::U32(2))
            .expect("insert");
        w.insert(net("::/64"), Value::U32(3)).expect("insert");
        let r = open(&w);
        assert_eq!(lookup_u32(&r, ip("::fffe:1:1")), Some(3));
        assert_eq!(lookup_u32(&r, ip("::ffff:1.2.3.4")), Some(3));
        assert_eq!(lookup_u32(&r, ip("1.2.3.4")), Some(3));
        let mut w = Writer::new("Test");
        w.insert(net("::/64"), Value::U32(3)).expect("insert");
        w.insert(net("::fffe:0:0/95"), Value::U32(2))
            .expect("insert");
        w.insert(net("1.2.3.0/24"), Value::U32(1)).expect("insert");
        let r = open(&w);
        assert_eq!(lookup_u32(&r, ip("::fffe:1:1")), Some(2));
        assert_eq!(lookup_u32(&r, ip("::ffff:1.2.3.4")), Some(1));
        assert_eq!(lookup_u32(&r, ip("::ffff:1.2.4.4")), Some(3));
        assert_eq!(lookup_u32(&r, ip("::1.2.4.4")), Some(3));
        assert_eq!(lookup_u32(&r, ip("::1:1.2.4.4")), Some(3));
        assert_eq!(lookup_u32(&r, ip("0:0:0:1::")), None);
    }

    #[test]
    fn rejects_aliased_networks_and_host_bits() {
        let mut w = Writer::new("Test");
        for n in ["::ffff:0:0/96", "::ffff:1.2.3.0/120", "::ffff:1.2.3.4/128"] {
            let err = w.insert(net(n), Value::U32(1)).expect_err("aliased");
            assert!(matches!(err, WriteError::AliasedNetwork(_)), "{err}");
            assert!(err.to_string().contains("IPv4-mapped"), "{err}");
        }
        for n in ["10.0.0.1/8", "2001:db8::1/32"] {
            let err = w.insert(net(n), Value::U32(1)).expect_err("host bits");
            assert!(matches!(err, WriteError::HostBitsSet(_)), "{err}");
        }
        let err = w
            .insert(net("10.0.0.1/8"), Value::U32(1))
            .expect_err("host bits");
        assert_eq!(
            err.to_string(),
            "network 10.0.0.1/8 has host bits set (expected 10.0.0.0/8)"
        );
        // Nothing was stored by the failed inserts.
        let r = open(&w);
        assert!(networks_u32(&r).is_empty());
    }

    #[test]
    fn empty_database() {
        let w = Writer::new("Empty");
        let r = open(&w);
        assert_eq!(r.metadata().node_count, 97 + 15);
        for a in ["1.2.3.4", "::1", "2001:db8::", "::ffff:1.2.3.4", "0.0.0.0"] {
            assert!(!r.lookup(ip(a)).expect("lookup").has_data(), "{a}");
        }
        assert!(networks_u32(&r).is_empty());
    }

    #[test]
    fn record_size_thresholds() {
        // The argument is an exclusive bound on the record values.
        assert_eq!(choose_record_size(0), Some(24));
        assert_eq!(choose_record_size(1 << 24), Some(24));
        assert_eq!(choose_record_size((1 << 24) + 1), Some(28));
        assert_eq!(choose_record_size(1 << 28), Some(28));
        assert_eq!(choose_record_size((1 << 28) + 1), Some(32));
        assert_eq!(choose_record_size(1 << 32), Some(32));
        assert_eq!(choose_record_size((1 << 32) + 1), None);
    }

    /// Builds a database with many networks and checks it at every record size.
    #[test]
    fn every_record_size_reads_back() {
        for bits in [24_u16, 28, 32] {
            let mut w = Writer::new("Test");
            w.force_record_size(bits);
            for i in 0..300_u32 {
                let n = IpNet::new(IpAddr::V4(Ipv4Addr::from(i << 12)), 20).expect("net");
                w.insert(n, Value::U32(i)).expect("insert");
                let n6 = IpNet::new(IpAddr::V6(Ipv6Addr::from(u128::from(i + 1) << 100)), 28)
                    .expect("net");
                w.insert(n6, Value::U32(i + 1000)).expect("insert");
            }
            let r = open(&w);
            assert_eq!(r.metadata().record_size, bits);
            for i in 0..300_u32 {
                let a = IpAddr::V4(Ipv4Addr::from((i << 12) | 0xABC));
                assert_eq!(lookup_u32(&r, a), Some(i), "{bits} {a}");
                let a6 = IpAddr::V6(Ipv6Addr::from((u128::from(i + 1) << 100) | 12345));
                assert_eq!(lookup_u32(&r, a6), Some(i + 1000), "{bits} {a6}");
            }
            assert_eq!(networks_u32(&r).len(), 600);
        }
    }

    #[test]
    fn large_data_section_selects_28_bit_records() {
        // Two ~9 MB values push data pointers past 2^24.
        let mut w = Writer::new("Test");
        w.insert(net("10.0.0.0/8"), Value::Bytes(vec![1; 9_000_000]))
            .expect("insert");
        w.insert(net("11.0.0.0/8"), Value::Bytes(vec![2; 9_000_000]))
            .expect("insert");
        w.insert(net("12.0.0.0/8"), Value::U32(42)).expect("insert");
        let r = open(&w);
        assert_eq!(r.metadata().record_size, 28);
        assert_eq!(lookup_u32(&r, ip("12.1.1.1")), Some(42));
        let b: serde_bytes_like::Bytes = r
            .lookup(ip("11.1.1.1"))
            .expect("lookup")
            .decode()
            .expect("decode")
            .expect("data");
        assert_eq!(b.0.len(), 9_000_000);
        assert!(b.0.iter().all(|&x| x == 2));
    }

    /// Minimal borrowed-bytes deserialisation without extra crates.
    mod serde_bytes_like {
        use serde::de::{Deserialize, Deserializer, Error, Visitor};
        use std::fmt;

        /// Owned copy of an MMDB bytes value.
        pub struct Bytes(pub Vec<u8>);

        /// Visitor accepting bytes.
        struct BytesVisitor;

        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_borrowed_bytes<E: Error>(self, v: &'de [u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
        }

        impl<'de> Deserialize<'de> for Bytes {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_bytes(BytesVisitor)
            }
        }
    }

    #[test]
    fn identical_values_are_written_once() {
        let build = |distinct: bool| -> (usize, Reader<Vec<u8>>) {
            let mut w = Writer::new("Test");
            w.build_epoch(0);
            for i in 0..2000_u32 {
                let n = IpNet::new(IpAddr::V4(Ipv4Addr::from(i << 8)), 24).expect("net");
                let name = if distinct {
                    format!("City number {i}")
                } else {
                    "Same city".into()
                };
                w.insert(n, city("EU", "GB", &name, 51.5, -0.1))
                    .expect("insert");
            }
            let bytes = w.to_bytes().expect("write");
            let len = bytes.len();
            (len, Reader::from_source(bytes).expect("open"))
        };
        let (same_len, same) = build(false);
        let (distinct_len, distinct) = build(true);
        same.verify().expect("verify");
        distinct.verify().expect("verify");
        // The repeated value is stored once: every lookup lands on one offset.
        let offsets: std::collections::HashSet<_> = (0..2000_u32)
            .map(|i| {
                same.lookup(IpAddr::V4(Ipv4Addr::from((i << 8) | 7)))
                    .expect("lookup")
                    .offset()
                    .expect("data")
            })
            .collect();
        assert_eq!(offsets.len(), 1);
        let tree = 2000 * 8 * 6; // generous bound for the tree
        assert!(same_len < tree, "{same_len}");
        // Distinct values share keys and sub-maps through pointers: each
        // record costs far less than its ~130-byte inline form.
        let data_per_value = (distinct_len - same_len) / 2000;
        assert!(data_per_value < 40, "{data_per_value}");
        let name = |r: &Reader<Vec<u8>>, i: u32| {
            let res = r
                .lookup(IpAddr::V4(Ipv4Addr::from(i << 8)))
                .expect("lookup");
            let c: geoip2::City = res.decode().expect("decode").expect("data");
            (
                c.city.names.english.map(str::to_owned),
                c.country.iso_code.map(str::to_owned),
                c.location.latitude,
            )
        };
        assert_eq!(
            name(&distinct, 1234),
            (
                Some("City number 1234".into()),
                Some("GB".into()),
                Some(51.5)
            )
        );
        assert_eq!(
            name(&same, 1234),
            (Some("Same city".into()), Some("GB".into()), Some(51.5))
        );
    }

    /// Every `Value` variant, as a reader-side struct.
    #[derive(Debug, Deserialize, PartialEq)]
    struct AllTypes {
        /// Map of string to string.
        map: std::collections::BTreeMap<String, String>,
        /// String.
        string: String,
        /// Empty string.
        empty: String,
        /// Double.
        double: f64,
        /// Float.
        float: f32,
        /// Bytes.
        bytes: serde_bytes_like::Bytes,
        /// u16.
        u16: u16,
        /// u16 zero.
        u16_zero: u16,
        /// u32.
        u32: u32,
        /// u64.
        u64: u64,
        /// i32 positive.
        i32_pos: i32,
        /// i32 negative.
        i32_neg: i32,
        /// i32 minimum.
        i32_min: i32,
        /// true.
        yes: bool,
        /// false.
        no: bool,
        /// Array of mixed values decoded as u32.
        array: Vec<u32>,
        /// Array of arrays.
        nested: Vec<Vec<String>>,
        /// Long string (extended size bytes).
        long: String,
    }

    impl PartialEq for serde_bytes_like::Bytes {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }

    impl std::fmt::Debug for serde_bytes_like::Bytes {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Bytes({:?})", self.0)
        }
    }

    #[test]
    fn every_value_type_decodes() {
        let long = "x".repeat(70_000);
        let value = Value::Map(vec![
            (
                "map".into(),
                Value::Map(vec![
                    ("a".into(), Value::String("b".into())),
                    ("c".into(), Value::String("d".into())),
                ]),
            ),
            ("string".into(), Value::String("héllo wörld".into())),
            ("empty".into(), Value::String(String::new())),
            ("double".into(), Value::Double(-123.456_789)),
            ("float".into(), Value::Float(1.5)),
            ("bytes".into(), Value::Bytes(vec![0, 1, 2, 255])),
            ("u16".into(), Value::U16(65_535)),
            ("u16_zero".into(), Value::U16(0)),
            ("u32".into(), Value::U32(4_000_000_000)),
            ("u64".into(), Value::U64(u64::MAX - 1)),
            ("i32_pos".into(), Value::I32(300)),
            ("i32_neg".into(), Value::I32(-2)),
            ("i32_min".into(), Value::I32(i32::MIN)),
            ("yes".into(), Value::Bool(true)),
            ("no".into(), Value::Bool(false)),
            (
                "array".into(),
                Value::Array(vec![Value::U32(1), Value::U32(70_000), Value::U32(0)]),
            ),
            (
                "nested".into(),
                Value::Array(vec![
                    Value::Array(vec![Value::String("a".into())]),
                    Value::Array(vec![]),
                ]),
            ),
            ("long".into(), Value::String(long.clone())),
        ]);
        let mut w = Writer::new("Test");
        w.insert(net("2001:db8::/32"), value).expect("insert");
        let r = open(&w);
        let got: AllTypes = r
            .lookup(ip("2001:db8::1"))
            .expect("lookup")
            .decode()
            .expect("decode")
            .expect("data");
        let expected = AllTypes {
            map: [("a", "b"), ("c", "d")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            string: "héllo wörld".into(),
            empty: String::new(),
            double: -123.456_789,
            float: 1.5,
            bytes: serde_bytes_like::Bytes(vec![0, 1, 2, 255]),
            u16: 65_535,
            u16_zero: 0,
            u32: 4_000_000_000,
            u64: u64::MAX - 1,
            i32_pos: 300,
            i32_neg: -2,
            i32_min: i32::MIN,
            yes: true,
            no: false,
            array: vec![1, 70_000, 0],
            nested: vec![vec!["a".into()], vec![]],
            long,
        };
        assert_eq!(got, expected);

        // Top-level scalars of each type.
        let mut w = Writer::new("Test");
        let scalars = [
            Value::String("s".into()),
            Value::Double(2.5),
            Value::Float(-0.25),
            Value::U16(7),
            Value::U32(8),
            Value::U64(9),
            Value::I32(-10),
            Value::Bool(true),
        ];
        for (i, v) in scalars.iter().enumerate() {
            let n = IpNet::new(IpAddr::V4(Ipv4Addr::new(10, i as u8, 0, 0)), 16).expect("net");
            w.insert(n, v.clone()).expect("insert");
        }
        let r = open(&w);
        let at = |i: u8| {
            r.lookup(IpAddr::V4(Ipv4Addr::new(10, i, 1, 1)))
                .expect("lookup")
        };
        assert_eq!(at(0).decode::<String>().expect("d"), Some("s".into()));
        assert_eq!(at(1).decode::<f64>().expect("d"), Some(2.5));
        assert_eq!(at(2).decode::<f32>().expect("d"), Some(-0.25));
        assert_eq!(at(3).decode::<u16>().expect("d"), Some(7));
        assert_eq!(at(4).decode::<u32>().expect("d"), Some(8));
        assert_eq!(at(5).decode::<u64>().expect("d"), Some(9));
        assert_eq!(at(6).decode::<i32>().expect("d"), Some(-10));
        assert_eq!(at(7).decode::<bool>().expect("d"), Some(true));
    }

    #[test]
    fn control_byte_sizes_and_pointers_round_trip() {
        // String lengths around every size-encoding boundary, and repeated
        // strings far enough into the section to need 3- and 4-byte pointers.
        let lengths = [
            0_usize, 1, 28, 29, 30, 284, 285, 286, 65_820, 65_821, 65_822, 100_000,
        ];
        let mut w = Writer::new("Test");
        let mut i = 0_u32;
        let mut expect = Vec::new();
        for &len in &lengths {
            let s: String = (0..len)
                .map(|k| char::from(b'a' + (k % 26) as u8))
                .collect();
            w.insert(
                IpNet::new(IpAddr::V4(Ipv4Addr::from(i << 16)), 16).expect("net"),
                Value::Array(vec![Value::String(s.clone()), Value::U32(i)]),
            )
            .expect("insert");
            expect.push((i, s));
            i += 1;
        }
        // Padding to move later values past the 2-byte and 3-byte pointer ranges.
        for pad in [3000_usize, 600_000] {
            w.insert(
                IpNet::new(IpAddr::V4(Ipv4Addr::from(i << 16)), 16).expect("net"),
                Value::Bytes(vec![0; pad]),
            )
            .expect("insert");
            i += 1;
            let s = format!("after padding {pad}");
            for _ in 0..2 {
                w.insert(
                    IpNet::new(IpAddr::V4(Ipv4Addr::from(i << 16)), 16).expect("net"),
                    Value::Array(vec![Value::String(s.clone()), Value::U32(i)]),
                )
                .expect("insert");
                expect.push((i, s.clone()));
                i += 1;
            }
        }
        let r = open(&w);
        for (i, s) in expect {
            let got: (String, u32) = r
                .lookup(IpAddr::V4(Ipv4Addr::from((i << 16) | 1)))
                .expect("lookup")
                .decode()
                .expect("decode")
                .expect("data");
            assert_eq!(got, (s, i));
        }
        // Pointer encodings at every boundary, decoded per the spec.
        for offset in [
            0_usize,
            1,
            2047,
            2048,
            2049,
            526_335,
            526_336,
            526_337,
            134_744_063,
            134_744_064,
            u32::MAX as usize,
        ] {
            let mut out = Vec::new();
            put_pointer(&mut out, offset);
            assert_eq!(out.len(), pointer_len(offset), "{offset}");
            assert_eq!(out[0] >> 5, ty::POINTER);
            let ss = (out[0] >> 3) & 3;
            let vvv = usize::from(out[0] & 7);
            let rest = out[1..]
                .iter()
                .fold(0_usize, |a, &b| (a << 8) | usize::from(b));
            let decoded = match ss {
                0 => (vvv << 8) | rest,
                1 => ((vvv << 16) | rest) + 2048,
                2 => ((vvv << 24) | rest) + 526_336,
                _ => rest,
            };
            assert_eq!(decoded, offset);
        }
        // Oversized values are refused, not truncated.
        let mut out = Vec::new();
        let err = put_control(&mut out, ty::STRING, MAX_PAYLOAD + 1, "string").expect_err("big");
        assert!(matches!(err, WriteError::ValueTooLarge { .. }), "{err}");
        assert!(put_control(&mut out, ty::STRING, MAX_PAYLOAD, "string").is_ok());
        assert_eq!(out, [0x5F, 0xFF, 0xFF, 0xFF]);
    }

    /// Reader-side value that captures any MMDB value as a [`Value`].
    struct AnyValue(Value);

    impl<'de> Deserialize<'de> for AnyValue {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            /// Visitor building [`Value`]s.
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = AnyValue;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an MMDB value")
                }
                fn visit_bool<E>(self, v: bool) -> Result<AnyValue, E> {
                    Ok(AnyValue(Value::Bool(v)))
                }
                fn visit_u16<E>(self, v: u16) -> Result<AnyValue, E> {
                    Ok(AnyValue(Value::U16(v)))
                }
                fn visit_u32<E>(self, v: u32) -> Result<AnyValue, E> {
                    Ok(AnyValue(Value::U32(v)))
                }
                fn visit_u64<E>(self, v: u64) -> Result<AnyValue, E> {
                    Ok(AnyValue(Value::U64(v)))
                }
                fn visit_i32<E>(self, v: i32) -> Result<AnyValue, E> {
                    Ok(AnyValue(Value::I32(v)))
                }
                fn visit_f32<E>(self, v: f32) -> Result<AnyValue, E> {
                    Ok(AnyValue(Value::Float(v)))
                }
                fn visit_f64<E>(self, v: f64) -> Result<AnyValue, E> {
                    Ok(AnyValue(Value::Double(v)))
                }
                fn visit_str<E>(self, v: &str) -> Result<AnyValue, E> {
                    Ok(AnyValue(Value::String(v.to_owned())))
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<AnyValue, E> {
                    Ok(AnyValue(Value::Bytes(v.to_vec())))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<AnyValue, A::Error> {
                    let mut items = Vec::new();
                    while let Some(AnyValue(v)) = seq.next_element()? {
                        items.push(v);
                    }
                    Ok(AnyValue(Value::Array(items)))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<AnyValue, A::Error> {
                    let mut entries = Vec::new();
                    while let Some((k, AnyValue(v))) = map.next_entry::<String, AnyValue>()? {
                        entries.push((k, v));
                    }
                    Ok(AnyValue(Value::Map(entries)))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// MaxMind's own test database, when the shared data is present.
    fn maxmind_city_test_db() -> Option<Vec<u8>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/geodata/GeoIP2-City-Test.mmdb");
        match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(_) => {
                eprintln!("skipping: GeoIP2-City-Test.mmdb not found (shared/geodata absent)");
                None
            }
        }
    }

    #[test]
    fn maxmind_test_database_layout_and_rewrite() {
        let Some(bytes) = maxmind_city_test_db() else {
            return;
        };
        let theirs = Reader::from_source(bytes).expect("open MaxMind test db");
        let m = theirs.metadata();
        // Same layout choices as ours.
        assert_eq!(m.ip_version, 6);
        assert_eq!(m.binary_format_major_version, 2);
        assert_eq!(m.binary_format_minor_version, 0);
        assert!(matches!(m.record_size, 24 | 28 | 32));
        assert!(m.description.contains_key("en"));
        assert!(m.languages.iter().any(|l| l == "en"));
        // IPv4 data is reachable as ::a.b.c.d and ::ffff:a.b.c.d, like ours.
        let v4: Ipv4Addr = "81.2.69.142".parse().expect("v4");
        let off = theirs.lookup(IpAddr::V4(v4)).expect("lookup").offset();
        assert!(off.is_some());
        for form in v6_forms(v4) {
            assert_eq!(theirs.lookup(form).expect("lookup").offset(), off);
        }
        // Re-write every network with our writer and compare City decodes.
        let mut all = Vec::new();
        for item in theirs.networks(WithinOptions::default()).expect("networks") {
            let item = item.expect("item");
            let n: IpNet = item
                .network()
                .expect("net")
                .to_string()
                .parse()
                .expect("ipnet");
            let AnyValue(v) = item.decode().expect("decode").expect("data");
            all.push((n, v));
        }
        assert!(all.len() > 100, "{}", all.len());
        eprintln!(
            "re-writing {} networks of the MaxMind test database",
            all.len()
        );
        let mut w = Writer::new(&m.database_type);
        for (n, v) in &all {
            w.insert(*n, v.clone()).expect("insert");
        }
        let ours = open(&w);
        for (n, _) in &all {
            for addr in [n.network(), n.broadcast()] {
                let a: Option<geoip2::City> = theirs
                    .lookup(addr)
                    .expect("lookup")
                    .decode()
                    .expect("decode");
                let b: Option<geoip2::City> =
                    ours.lookup(addr).expect("lookup").decode().expect("decode");
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{addr}");
                let va: Option<AnyValue> = theirs.lookup(addr).expect("l").decode().expect("d");
                let vb: Option<AnyValue> = ours.lookup(addr).expect("l").decode().expect("d");
                let (va, vb) = (va.expect("data").0, vb.expect("data").0);
                assert_eq!(va, vb, "{addr}");
                let na = theirs.lookup(addr).expect("lookup").network().expect("n");
                let nb = ours.lookup(addr).expect("lookup").network().expect("n");
                assert_eq!(na, nb, "{addr}");
            }
        }
        let our_nets: Vec<String> = ours
            .networks(WithinOptions::default())
            .expect("networks")
            .map(|i| i.expect("item").network().expect("net").to_string())
            .collect();
        let their_nets: Vec<String> = all.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(our_nets.len(), their_nets.len());
    }

    /// Key of an address in the tree: IPv4 as `::a.b.c.d`, `::ffff:a.b.c.d` likewise.
    fn tree_key(addr: IpAddr) -> u128 {
        match addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => {
                let n = u128::from(a);
                if n >> 32 == IPV4_MAPPED >> 32 {
                    n & 0xFFFF_FFFF
                } else {
                    n
                }
            }
        }
    }

    /// A network as (base, prefix length) in the IPv6 tree.
    fn tree_net(n: IpNet) -> (u128, u8) {
        match n {
            IpNet::V4(v) => (u128::from(u32::from(v.network())), 96 + v.prefix_len()),
            IpNet::V6(v) => (u128::from(v.network()), v.prefix_len()),
        }
    }

    /// Whether the tree network contains the tree key.
    fn contains(net: (u128, u8), key: u128) -> bool {
        net.1 == 0 || (net.0 ^ key) >> (128 - u32::from(net.1)) == 0
    }

    /// Strategy for networks clustered around a few seeds so they overlap.
    fn arb_net() -> impl Strategy<Value = IpNet> {
        let seeds_v4 =
            prop::sample::select(vec![0x0A00_0000_u32, 0xC0A8_0000, 0x0000_0000, 0xFFFF_FF00]);
        let v4 =
            (seeds_v4, any::<u32>(), 0_u8..=32, 0_u32..=32).prop_map(|(seed, noise, len, keep)| {
                let mask = if keep == 32 { 0 } else { u32::MAX >> keep };
                let a = seed ^ (noise & mask);
                IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), len)
                    .expect("valid v4 prefix")
                    .trunc()
            });
        let seeds_v6 = prop::sample::select(vec![
            0_u128,
            IPV4_MAPPED,
            0x2001_0db8_u128 << 96,
            0xfe80_u128 << 112,
            u128::MAX,
        ]);
        let v6 = (seeds_v6, any::<u128>(), 0_u8..=128, 0_u32..=128).prop_map(
            |(seed, noise, len, keep)| {
                let mask = if keep == 128 { 0 } else { u128::MAX >> keep };
                let a = seed ^ (noise & mask);
                IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), len)
                    .expect("valid v6 prefix")
                    .trunc()
            },
        );
        prop_oneof![v4, v6]
    }

    /// Addresses to probe: inside or at the edges of the networks, and random.
    fn probes(nets: &[IpNet], extra: &[u128]) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for n in nets {
            out.push(n.network());
            out.push(n.broadcast());
            if let IpNet::V4(v) = n {
                let b = u32::from(v.broadcast());
                out.push(IpAddr::V4(Ipv4Addr::from(b.wrapping_add(1))));
                out.push(IpAddr::V4(Ipv4Addr::from(
                    u32::from(v.network()).wrapping_sub(1),
                )));
            } else if let IpNet::V6(v) = n {
                let b = u128::from(v.broadcast());
                out.push(IpAddr::V6(Ipv6Addr::from(b.wrapping_add(1))));
                out.push(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v.network()).wrapping_sub(1),
                )));
            }
        }
        for &x in extra {
            out.push(IpAddr::V6(Ipv6Addr::from(x)));
            out.push(IpAddr::V4(Ipv4Addr::from(x as u32)));
            out.push(IpAddr::V6(Ipv6Addr::from(
                IPV4_MAPPED | u128::from(x as u32),
            )));
        }
        out
    }

    /// Checks the database against the brute-force "last containing insert wins" rule.
    fn check_against_reference(
        inserts: &[(IpNet, u32)],
        extra: &[u128],
    ) -> Result<(), TestCaseError> {
        let mut w = Writer::new("Prop");
        let mut accepted: Vec<((u128, u8), u32)> = Vec::new();
        for &(n, v) in inserts {
            match w.insert(n, Value::U32(v)) {
                Ok(()) => accepted.push((tree_net(n), v)),
                Err(WriteError::AliasedNetwork(_)) => {
                    let (base, len) = tree_net(n);
                    prop_assert!(len >= 96 && base >> 32 == IPV4_MAPPED >> 32);
                }
                Err(e) => return Err(TestCaseError::fail(format!("insert {n}: {e}"))),
            }
        }
        let bytes = w
            .to_bytes()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let r = Reader::from_source(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        r.verify().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let reference = |key: u128| {
            accepted
                .iter()
                .rev()
                .find(|(n, _)| contains(*n, key))
                .map(|(_, v)| *v)
        };
        let nets: Vec<IpNet> = inserts.iter().map(|(n, _)| *n).collect();
        for addr in probes(&nets, extra) {
            prop_assert_eq!(
                lookup_u32(&r, addr),
                reference(tree_key(addr)),
                "address {}",
                addr
            );
        }
        // Iteration yields disjoint networks whose values match the reference.
        let mut seen: Vec<(u128, u8)> = Vec::new();
        for (n, v) in networks_u32(&r) {
            let t = tree_net(n);
            let last = t.0 | u128::MAX.checked_shr(u32::from(t.1)).unwrap_or(0);
            prop_assert_eq!(reference(t.0), Some(v), "first of {}", n);
            prop_assert_eq!(reference(last), Some(v), "last of {}", n);
            seen.push(t);
        }
        seen.sort();
        for pair in seen.windows(2) {
            prop_assert!(!contains(pair[0], pair[1].0), "overlap {:?}", pair);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn lookups_match_last_containing_insert(
            inserts in prop::collection::vec((arb_net(), 0_u32..6), 0..40),
            extra in prop::collection::vec(any::<u128>(), 0..20),
        ) {
            check_against_reference(&inserts, &extra)?;
        }

        #[test]
        fn ascending_inserts_give_most_specific_wins(
            inserts in prop::collection::vec((arb_net(), 0_u32..1000), 0..40),
            extra in prop::collection::vec(any::<u128>(), 0..20),
        ) {
            let mut sorted = inserts.clone();
            sorted.sort_by_key(|(n, _)| tree_net(*n).1);
            check_against_reference(&sorted, &extra)?;
            // Independent most-specific reference.
            let mut w = Writer::new("Prop");
            let mut kept = Vec::new();
            for &(n, v) in &sorted {
                if w.insert(n, Value::U32(v)).is_ok() {
                    kept.push((tree_net(n), v));
                }
            }
            let r = Reader::from_source(w.to_bytes().map_err(|e| TestCaseError::fail(e.to_string()))?)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let nets: Vec<IpNet> = sorted.iter().map(|(n, _)| *n).collect();
            for addr in probes(&nets, &extra) {
                let key = tree_key(addr);
                let best = kept
                    .iter()
                    .enumerate()
                    .filter(|(_, (n, _))| contains(*n, key))
                    .max_by_key(|(i, (n, _))| (n.1, *i))
                    .map(|(_, (_, v))| *v);
                prop_assert_eq!(lookup_u32(&r, addr), best, "address {}", addr);
            }
        }
    }
}
