//! The compiled geo map: an immutable longest-prefix table over the IPv4 and IPv6 spaces.
//!
//! A [`TableBuilder`] records networks painted over a default value; [`TableBuilder::build`]
//! freezes them into a [`PrefixTable`] that answers, for any address, the painted value and the
//! ECS scope: the prefix length of the leaf containing the address after sibling prefixes with
//! equal values have been merged into their supernet (as gdnsd does). That leaf is the widest
//! CIDR block around the address on which the answer is constant, so the scope is never too wide
//! (a resolver caching it never serves a wrong answer) and never needlessly narrow.
//!
//! # Representation
//!
//! Each family (IPv4 and IPv6 are separate spaces) is stored as its *runs*: the maximal
//! intervals of consecutive addresses with the same value, as a sorted array of run start
//! addresses and a parallel array of values. No trie is kept, because none is needed: a fully
//! merged binary trie has a leaf for an aligned block exactly when the block's value is
//! constant and its parent's is not, i.e. when the block lies inside one run and its parent
//! does not. The merged leaf containing an address `k` in run `[a, b]` is therefore the shortest
//! prefix of `k` whose block excludes both `a - 1` and `b + 1`, and its length is
//! `max(clz(k ^ (a - 1)), clz(k ^ (b + 1))) + 1`: two XORs and two leading-zero counts on the
//! run bounds the lookup has already loaded. [`PrefixTable::leaves`] decomposes runs into their
//! CIDR blocks on the fly, which yields exactly the merged trie's leaves in address order.
//!
//! Runs are found through a direct bucket index: the span between the second and the last run
//! start is cut into at most 2^20 equal power-of-two slices, and the index holds, per slice, the
//! run containing the slice's first address. A lookup reads one index pair, binary-searches the
//! (usually one or two) run starts of its slice and reads one value: a handful of cache lines
//! and no allocation.
//!
//! # Building
//!
//! Building does not paint a trie either. Every insert is kept as a (network, value, sequence
//! number) record; `build` sorts them by (start, prefix length, sequence) and sweeps them once
//! with a stack of open networks (prefixes nest or are disjoint, so the open ones form a chain),
//! carrying down each network's winner: the latest-inserted network among it and its ancestors,
//! which is what the painting semantics say the address gets. Segments are emitted in address
//! order and a segment with the same value as the previous one extends it instead of starting a
//! run, which performs every sibling merge at once. Memory is linear in the number of inserts,
//! however deep and sparse the prefixes (an IPv6 /48 costs one record, not 48 trie nodes).

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::{Add, BitAnd, BitXor, Shl, Shr, Sub};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Average number of runs per slice the bucket index aims for.
const RUNS_PER_BUCKET: usize = 2;

/// Most index bits per family: the index never exceeds 2^20 + 1 entries (4 MiB).
const MAX_BUCKET_BITS: u32 = 20;

/// Most networks one family may receive, so that run numbers (at most twice that plus one)
/// and sequence numbers fit in a `u32`.
const MAX_INSERTS_PER_FAMILY: usize = (u32::MAX / 2) as usize;

/// An unsigned integer holding one address of a family, most significant bit first.
trait Bits:
    Copy
    + Ord
    + fmt::Debug
    + Add<Output = Self>
    + Sub<Output = Self>
    + BitAnd<Output = Self>
    + BitXor<Output = Self>
    + Shl<u32, Output = Self>
    + Shr<u32, Output = Self>
{
    /// Number of bits in an address of the family (32 or 128).
    const WIDTH: u32;
    /// The all-zeros address.
    const ZERO: Self;
    /// The address one.
    const ONE: Self;
    /// The all-ones address.
    const MAX: Self;

    /// Number of leading zero bits.
    fn clz(self) -> u32;
    /// Number of trailing zero bits (`WIDTH` for zero).
    fn ctz(self) -> u32;
    /// Addition that reports overflow past the end of the space.
    fn checked_plus(self, rhs: Self) -> Option<Self>;
    /// The value as a `usize`; callers only pass values known to fit.
    fn low_usize(self) -> usize;
    /// A `usize` as an address; callers only pass values known to fit.
    fn from_usize(value: usize) -> Self;

    /// The host part mask of a `len`-bit prefix: the offset of a block's last address.
    fn host_mask(len: u8) -> Self {
        if u32::from(len) >= Self::WIDTH {
            Self::ZERO
        } else {
            Self::MAX >> u32::from(len)
        }
    }
}

/// Implements [`Bits`] for a primitive unsigned integer.
macro_rules! impl_bits {
    ($t:ty) => {
        impl Bits for $t {
            const WIDTH: u32 = <$t>::BITS;
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const MAX: Self = <$t>::MAX;

            #[inline]
            fn clz(self) -> u32 {
                self.leading_zeros()
            }
            #[inline]
            fn ctz(self) -> u32 {
                self.trailing_zeros()
            }
            #[inline]
            fn checked_plus(self, rhs: Self) -> Option<Self> {
                self.checked_add(rhs)
            }
            #[inline]
            fn low_usize(self) -> usize {
                self as usize
            }
            #[inline]
            fn from_usize(value: usize) -> Self {
                value as $t
            }
        }
    };
}

impl_bits!(u32);
impl_bits!(u128);

/// One `insert` call for one family, kept until `build`.
#[derive(Clone, Copy)]
struct Paint<K, V> {
    /// First address of the network (host bits cleared).
    start: K,
    /// Insertion order, from 1 (0 is the default under everything); later wins.
    seq: u32,
    /// Prefix length of the network.
    len: u8,
    /// Value painted over the network.
    value: V,
}

impl<K: Bits, V> Paint<K, V> {
    /// Last address of the network.
    fn end(&self) -> K {
        self.start + K::host_mask(self.len)
    }

    /// Sweep order: by start, enclosing networks before enclosed ones, earlier before later.
    fn sweep_order(&self, other: &Self) -> Ordering {
        self.start
            .cmp(&other.start)
            .then(self.len.cmp(&other.len))
            .then(self.seq.cmp(&other.seq))
    }
}

/// A network still open during the build sweep, with the winner of its chain of ancestors.
#[derive(Clone, Copy)]
struct Open<K, V> {
    /// Last address of the network.
    end: K,
    /// Value of the latest-inserted network among this one and its ancestors.
    value: V,
    /// Sequence number of that network.
    seq: u32,
}

/// Builds a table by painting networks over a default value.
#[derive(Clone)]
pub struct TableBuilder<V> {
    /// Value of every address no inserted network covers.
    default: V,
    /// IPv4 inserts, in insertion order.
    v4: Vec<Paint<u32, V>>,
    /// IPv6 inserts, in insertion order.
    v6: Vec<Paint<u128, V>>,
}

impl<V: Copy + Eq> TableBuilder<V> {
    /// Every address starts with `default`.
    pub fn new(default: V) -> Self {
        TableBuilder {
            default,
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }

    /// Sets every address inside `network` to `value`, overriding whatever was set inside it
    /// before (so painting in order of increasing specificity gives longest-prefix-wins, and a
    /// later layer overrides an earlier one entirely inside its network).
    ///
    /// Host bits of `network` are ignored (`10.1.2.3/8` paints `10.0.0.0/8`).
    ///
    /// # Panics
    ///
    /// If more than 2^31 − 1 networks of one family are inserted (billions: far beyond any
    /// geo database, and more than the memory of the machines this runs on).
    pub fn insert(&mut self, network: IpNet, value: V) {
        match network {
            IpNet::V4(net) => record(
                &mut self.v4,
                u32::from(net.network()),
                net.prefix_len(),
                value,
            ),
            IpNet::V6(net) => record(
                &mut self.v6,
                u128::from(net.network()),
                net.prefix_len(),
                value,
            ),
        }
    }

    /// Merges siblings with equal values and freezes the table.
    pub fn build(self) -> PrefixTable<V> {
        let TableBuilder { default, v4, v6 } = self;
        // One family at a time, each record list dropped as soon as it is consumed, to keep the
        // peak low.
        let v4 = Space::build(default, v4);
        let v6 = Space::build(default, v6);
        PrefixTable { v4, v6 }
    }
}

impl<V> fmt::Debug for TableBuilder<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableBuilder")
            .field("v4_inserts", &self.v4.len())
            .field("v6_inserts", &self.v6.len())
            .finish_non_exhaustive()
    }
}

/// Appends one insert to a family's record list, numbering it.
fn record<K, V>(paints: &mut Vec<Paint<K, V>>, start: K, len: u8, value: V) {
    assert!(
        paints.len() < MAX_INSERTS_PER_FAMILY,
        "more than {MAX_INSERTS_PER_FAMILY} networks inserted into one address family"
    );
    paints.push(Paint {
        start,
        // Lossless: the length is below MAX_INSERTS_PER_FAMILY < u32::MAX (asserted above).
        seq: paints.len() as u32 + 1,
        len,
        value,
    });
}

/// The immutable table.
#[derive(Clone)]
pub struct PrefixTable<V> {
    /// The IPv4 space.
    v4: Space<u32, V>,
    /// The IPv6 space.
    v6: Space<u128, V>,
}

impl<V: Copy + Eq> PrefixTable<V> {
    /// The value for `addr` and the prefix length (in the address's own family: 0..=32 for IPv4,
    /// 0..=128 for IPv6) of the merged leaf containing it.
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> (V, u8) {
        match addr {
            IpAddr::V4(a) => self.lookup_v4(u32::from(a)),
            IpAddr::V6(a) => self.lookup_v6(u128::from(a)),
        }
    }

    /// Same as [`lookup`](Self::lookup) for an IPv4 address given as a `u32`.
    #[inline]
    pub fn lookup_v4(&self, addr: u32) -> (V, u8) {
        self.v4.lookup(addr)
    }

    /// Same as [`lookup`](Self::lookup) for an IPv6 address given as a `u128`.
    #[inline]
    pub fn lookup_v6(&self, addr: u128) -> (V, u8) {
        self.v6.lookup(addr)
    }

    /// Every leaf as (network, value), in address order; IPv4 leaves first. For tests,
    /// `geo lookup` output and debugging.
    pub fn leaves(&self) -> impl Iterator<Item = (IpNet, V)> + '_ {
        let v4 = self.v4.leaves().map(|(start, len, value)| {
            // `len` is at most 32: blocks of a u32 space have at most 32 prefix bits.
            (
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(start), len)),
                value,
            )
        });
        let v6 = self.v6.leaves().map(|(start, len, value)| {
            // `len` is at most 128: blocks of a u128 space have at most 128 prefix bits.
            (
                IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(start), len)),
                value,
            )
        });
        v4.chain(v6)
    }

    /// Number of leaves (merged CIDR blocks, both families), for reports.
    pub fn leaf_count(&self) -> usize {
        self.v4.leaf_count + self.v6.leaf_count
    }

    /// Bytes of memory held (approximate), for reports.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.v4.heap_bytes() + self.v6.heap_bytes()
    }
}

impl<V> fmt::Debug for PrefixTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixTable")
            .field("v4_runs", &self.v4.starts.len())
            .field("v4_leaves", &self.v4.leaf_count)
            .field("v6_runs", &self.v6.starts.len())
            .field("v6_leaves", &self.v6.leaf_count)
            .finish_non_exhaustive()
    }
}

/// One family's frozen address space: its runs of equal values and an index over them.
#[derive(Clone)]
struct Space<K, V> {
    /// First address of every run, strictly increasing; `starts[0]` is zero, and run `i` ends
    /// just before `starts[i + 1]` (the last one at the end of the space).
    starts: Vec<K>,
    /// Value of every run; two consecutive runs never have the same value.
    values: Vec<V>,
    /// Start of the second run (zero when there is a single run): addresses below it are in
    /// run 0.
    lo: K,
    /// Start of the last run (zero when there is a single run): addresses from it on are in
    /// the last run.
    hi: K,
    /// The index slices `[lo, hi]` into blocks of `2^shift` addresses.
    shift: u32,
    /// For every slice, the run containing its first address, then one entry holding the last
    /// run's number.
    index: Vec<u32>,
    /// Number of CIDR blocks the runs decompose into.
    leaf_count: usize,
}

impl<K: Bits, V: Copy + Eq> Space<K, V> {
    /// Sweeps one family's inserts into runs and indexes them.
    fn build(default: V, mut paints: Vec<Paint<K, V>>) -> Self {
        paints.sort_unstable_by(Paint::sweep_order);
        // Every insert starts at most two runs (at its start and just after its end).
        let capacity = 2 * paints.len() + 1;
        let mut runs = RunsBuilder {
            starts: Vec::with_capacity(capacity),
            values: Vec::with_capacity(capacity),
        };
        // The whole space, painted with the default before any insert.
        let root = Open {
            end: K::MAX,
            value: default,
            seq: 0,
        };
        // Networks containing the sweep position, outermost first (the root excluded).
        let mut open: Vec<Open<K, V>> = Vec::with_capacity(K::WIDTH as usize + 1);
        // First address not yet emitted.
        let mut pos = K::ZERO;
        for paint in &paints {
            while let Some(&top) = open.last()
                && top.end < paint.start
            {
                if pos <= top.end {
                    runs.emit(pos, top.value);
                }
                // No overflow: top.end < paint.start <= MAX.
                pos = top.end + K::ONE;
                open.pop();
            }
            // Sorted by start and enclosing-first, so the innermost open network (or the root)
            // contains the whole of `paint`.
            let top = open.last().copied().unwrap_or(root);
            if pos < paint.start {
                runs.emit(pos, top.value);
                pos = paint.start;
            }
            let end = paint.end();
            open.push(if paint.seq > top.seq {
                Open {
                    end,
                    value: paint.value,
                    seq: paint.seq,
                }
            } else {
                Open { end, ..top }
            });
        }
        drop(paints);
        // Close what is still open, innermost first, then the root.
        let mut pos = Some(pos);
        for top in open.iter().rev().chain([&root]) {
            if let Some(first) = pos
                && first <= top.end
            {
                runs.emit(first, top.value);
            }
            pos = top.end.checked_plus(K::ONE);
        }
        let RunsBuilder {
            mut starts,
            mut values,
        } = runs;
        starts.shrink_to_fit();
        values.shrink_to_fit();
        Self::index(starts, values)
    }

    /// Builds the bucket index over finished runs.
    fn index(starts: Vec<K>, values: Vec<V>) -> Self {
        let n = starts.len();
        let (lo, hi) = match (starts.get(1), starts.last()) {
            (Some(&lo), Some(&hi)) => (lo, hi),
            _ => (K::ZERO, K::ZERO),
        };
        let span = hi - lo;
        // At least one bit, so that `shift` stays below the width.
        let target_bits = (n / RUNS_PER_BUCKET)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(1, MAX_BUCKET_BITS);
        let span_bits = K::WIDTH - span.clz();
        let shift = span_bits.saturating_sub(target_bits);
        // At most 2^target_bits slices: span < 2^span_bits.
        let buckets = (span >> shift).low_usize() + 1;
        let mut index = Vec::with_capacity(buckets + 1);
        let mut run = 0usize;
        for bucket in 0..buckets {
            // No overflow: bucket << shift <= span = hi - lo.
            let first = lo + (K::from_usize(bucket) << shift);
            while run + 1 < n && starts[run + 1] <= first {
                run += 1;
            }
            // Lossless: there are at most 2 * MAX_INSERTS_PER_FAMILY + 1 <= u32::MAX runs.
            index.push(run as u32);
        }
        index.push(n.saturating_sub(1) as u32);
        let leaf_count = (0..n)
            .map(|i| cidr_blocks(starts[i], run_end(&starts, i)).count())
            .sum();
        Space {
            starts,
            values,
            lo,
            hi,
            shift,
            index,
            leaf_count,
        }
    }

    /// The value at `addr` and the prefix length of the merged leaf containing it.
    #[inline]
    fn lookup(&self, addr: K) -> (V, u8) {
        let starts = &self.starts[..];
        let run = if addr < self.lo {
            0
        } else if addr >= self.hi {
            starts.len() - 1
        } else {
            // lo <= addr < hi, so the slice exists and the run is between the runs containing
            // the slice's first address and the next slice's first address.
            let bucket = ((addr - self.lo) >> self.shift).low_usize();
            let first = self.index[bucket] as usize;
            let last = self.index[bucket + 1] as usize;
            first + starts[first + 1..=last].partition_point(|&start| start <= addr)
        };
        // The leaf is the shortest prefix of `addr` whose block excludes the addresses just
        // before and just after the run.
        let mut scope = 0;
        if run > 0 {
            // starts[run] > starts[0] = 0, so no underflow.
            scope = (addr ^ (starts[run] - K::ONE)).clz() + 1;
        }
        if let Some(&next) = starts.get(run + 1) {
            scope = scope.max((addr ^ next).clz() + 1);
        }
        // Lossless: scope <= WIDTH <= 128 (addr differs from both neighbours).
        (self.values[run], scope as u8)
    }

    /// Every leaf as (first address, prefix length, value), in address order.
    fn leaves(&self) -> impl Iterator<Item = (K, u8, V)> + '_ {
        (0..self.starts.len()).flat_map(move |i| {
            let value = self.values[i];
            cidr_blocks(self.starts[i], run_end(&self.starts, i))
                .map(move |(start, len)| (start, len, value))
        })
    }

    /// Bytes of heap memory held.
    fn heap_bytes(&self) -> usize {
        self.starts.capacity() * std::mem::size_of::<K>()
            + self.values.capacity() * std::mem::size_of::<V>()
            + self.index.capacity() * std::mem::size_of::<u32>()
    }
}

/// Runs being emitted by the build sweep.
struct RunsBuilder<K, V> {
    /// First address of every run so far.
    starts: Vec<K>,
    /// Value of every run so far.
    values: Vec<V>,
}

impl<K, V: Copy + Eq> RunsBuilder<K, V> {
    /// Paints the addresses from `start` up to the next emitted start with `value`, extending
    /// the previous run when it has the same value (this is where siblings merge).
    fn emit(&mut self, start: K, value: V) {
        if self.values.last() != Some(&value) {
            self.starts.push(start);
            self.values.push(value);
        }
    }
}

/// Last address of run `i` of `starts`.
fn run_end<K: Bits>(starts: &[K], i: usize) -> K {
    starts.get(i + 1).map_or(K::MAX, |&next| next - K::ONE)
}

/// The minimal list of CIDR blocks covering `first..=last`, as (start, prefix length), in order.
///
/// Each block is the largest aligned block starting at the current address that stays within
/// the range, i.e. a maximal aligned block inside it.
fn cidr_blocks<K: Bits>(first: K, last: K) -> impl Iterator<Item = (K, u8)> {
    let mut next = Some(first);
    std::iter::from_fn(move || {
        let start = next.filter(|&start| start <= last)?;
        let rest = last - start;
        // log2 of the largest power of two not above the range size rest + 1.
        let fits = if rest == K::MAX {
            K::WIDTH
        } else {
            K::WIDTH - 1 - (rest + K::ONE).clz()
        };
        let bits = fits.min(start.ctz());
        next = if bits == K::WIDTH {
            None
        } else {
            start.checked_plus(K::ONE << bits)
        };
        // Lossless: bits <= WIDTH <= 128.
        Some((start, (K::WIDTH - bits) as u8))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Shorthand for parsing a network literal.
    fn net(s: &str) -> IpNet {
        s.parse().expect("test literal is a valid network")
    }

    /// Shorthand for parsing an address literal.
    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test literal is a valid address")
    }

    /// Builds a table from (network literal, value) pairs over default 0.
    fn table(inserts: &[(&str, u8)]) -> PrefixTable<u8> {
        let mut builder = TableBuilder::new(0);
        for &(n, v) in inserts {
            builder.insert(net(n), v);
        }
        builder.build()
    }

    /// The leaves as (network literal, value) pairs.
    fn leaf_list(t: &PrefixTable<u8>) -> Vec<(String, u8)> {
        t.leaves().map(|(n, v)| (n.to_string(), v)).collect()
    }

    /// Asserts that `lookup` of `addr` gives `value` with `scope`.
    #[track_caller]
    fn check(t: &PrefixTable<u8>, addr: &str, value: u8, scope: u8) {
        assert_eq!(t.lookup(ip(addr)), (value, scope), "lookup {addr}");
    }

    #[test]
    fn default_only() {
        let t = table(&[]);
        check(&t, "0.0.0.0", 0, 0);
        check(&t, "192.0.2.1", 0, 0);
        check(&t, "255.255.255.255", 0, 0);
        check(&t, "::", 0, 0);
        check(&t, "2001:db8::1", 0, 0);
        check(&t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0, 0);
        assert_eq!(t.lookup_v4(0x0102_0304), (0, 0));
        assert_eq!(t.lookup_v6(u128::MAX), (0, 0));
        assert_eq!(leaf_list(&t), [("0.0.0.0/0".into(), 0), ("::/0".into(), 0)]);
        assert_eq!(t.leaf_count(), 2);
        assert!(t.memory_bytes() > 0);
    }

    #[test]
    fn one_network() {
        let t = table(&[("10.0.0.0/8", 1)]);
        check(&t, "10.0.0.0", 1, 8);
        check(&t, "10.1.2.3", 1, 8);
        check(&t, "10.255.255.255", 1, 8);
        check(&t, "11.0.0.0", 0, 8);
        check(&t, "9.255.255.255", 0, 7);
        check(&t, "8.0.0.0", 0, 7);
        check(&t, "12.0.0.0", 0, 6);
        check(&t, "0.0.0.0", 0, 5);
        check(&t, "200.0.0.0", 0, 1);
        check(&t, "::a00:1", 0, 0);
        let expected = [
            ("0.0.0.0/5", 0),
            ("8.0.0.0/7", 0),
            ("10.0.0.0/8", 1),
            ("11.0.0.0/8", 0),
            ("12.0.0.0/6", 0),
            ("16.0.0.0/4", 0),
            ("32.0.0.0/3", 0),
            ("64.0.0.0/2", 0),
            ("128.0.0.0/1", 0),
            ("::/0", 0),
        ];
        let expected: Vec<(String, u8)> = expected.iter().map(|&(n, v)| (n.into(), v)).collect();
        assert_eq!(leaf_list(&t), expected);
        assert_eq!(t.leaf_count(), expected.len());
    }

    #[test]
    fn host_bits_are_ignored() {
        let t = table(&[("10.1.2.3/8", 1), ("2001:db8::1/32", 2)]);
        check(&t, "10.200.0.0", 1, 8);
        check(&t, "2001:db8:ffff::", 2, 32);
    }

    #[test]
    fn specific_after_general_wins_inside() {
        let t = table(&[("10.0.0.0/8", 1), ("10.1.0.0/16", 2)]);
        check(&t, "10.1.2.3", 2, 16);
        check(&t, "10.0.2.3", 1, 16);
        check(&t, "10.2.0.0", 1, 15);
        check(&t, "10.128.0.0", 1, 9);
        check(&t, "11.0.0.0", 0, 8);
    }

    #[test]
    fn general_after_specific_overrides_everything_inside() {
        let t = table(&[("10.1.0.0/16", 2), ("10.0.0.0/8", 1)]);
        check(&t, "10.1.2.3", 1, 8);
        check(&t, "10.200.0.0", 1, 8);
        // A later layer replaces an earlier one inside its network only.
        let t = table(&[("10.1.0.0/16", 2), ("10.1.2.0/24", 3), ("10.1.0.0/17", 4)]);
        check(&t, "10.1.2.3", 4, 17);
        check(&t, "10.1.128.0", 2, 17);
        // Re-inserting the same network: the last value wins.
        let t = table(&[("10.0.0.0/8", 1), ("10.0.0.0/8", 2)]);
        check(&t, "10.1.2.3", 2, 8);
        // Painting the default back merges everything again.
        let t = table(&[("10.0.0.0/8", 1), ("10.0.0.0/8", 0)]);
        check(&t, "10.1.2.3", 0, 0);
        assert_eq!(t.leaf_count(), 2);
    }

    #[test]
    fn whole_space_networks() {
        let t = table(&[("0.0.0.0/0", 5)]);
        check(&t, "1.2.3.4", 5, 0);
        check(&t, "255.255.255.255", 5, 0);
        check(&t, "::1", 0, 0);
        let t = table(&[("::/0", 6), ("10.0.0.0/8", 1)]);
        check(&t, "::1", 6, 0);
        check(&t, "ffff::", 6, 0);
        check(&t, "10.0.0.1", 1, 8);
        // A /0 painted after more specific networks wipes them.
        let t = table(&[("10.0.0.0/8", 1), ("0.0.0.0/0", 2)]);
        check(&t, "10.0.0.1", 2, 0);
        assert_eq!(leaf_list(&t), [("0.0.0.0/0".into(), 2), ("::/0".into(), 0)]);
    }

    #[test]
    fn host_networks() {
        let t = table(&[("1.2.3.4/32", 1), ("2001:db8::1/128", 2)]);
        check(&t, "1.2.3.4", 1, 32);
        check(&t, "1.2.3.5", 0, 32);
        check(&t, "1.2.3.6", 0, 31);
        check(&t, "1.2.3.0", 0, 30);
        check(&t, "2001:db8::1", 2, 128);
        check(&t, "2001:db8::", 0, 128);
        check(&t, "2001:db8::2", 0, 127);
        // The very first and last addresses of each space.
        let t = table(&[
            ("0.0.0.0/32", 1),
            ("255.255.255.255/32", 2),
            ("::/128", 3),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", 4),
        ]);
        check(&t, "0.0.0.0", 1, 32);
        check(&t, "0.0.0.1", 0, 32);
        check(&t, "255.255.255.255", 2, 32);
        check(&t, "255.255.255.254", 0, 32);
        check(&t, "128.0.0.0", 0, 2);
        check(&t, "::", 3, 128);
        check(&t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 4, 128);
        check(&t, "8000::", 0, 2);
    }

    #[test]
    fn equal_siblings_merge_into_supernet() {
        let t = table(&[("10.0.0.0/9", 1), ("10.128.0.0/9", 1)]);
        check(&t, "10.1.2.3", 1, 8);
        check(&t, "10.200.2.3", 1, 8);
        assert!(leaf_list(&t).contains(&("10.0.0.0/8".into(), 1)));
        // Recursively: four /10s make a /8.
        let t = table(&[
            ("10.0.0.0/10", 1),
            ("10.64.0.0/10", 1),
            ("10.128.0.0/10", 1),
            ("10.192.0.0/10", 1),
        ]);
        check(&t, "10.64.0.0", 1, 8);
        // Siblings equal to the default merge with the rest of the space.
        let t = table(&[("0.0.0.0/1", 0), ("128.0.0.0/1", 0), ("2001:db8::/32", 0)]);
        check(&t, "1.2.3.4", 0, 0);
        check(&t, "2001:db8::1", 0, 0);
        assert_eq!(t.leaf_count(), 2);
        // IPv6 too.
        let t = table(&[("2001:db8::/33", 7), ("2001:db8:8000::/33", 7)]);
        check(&t, "2001:db8:1::", 7, 32);
    }

    #[test]
    fn adjacent_non_siblings_do_not_merge() {
        // 10.128.0.0/9 and 11.0.0.0/9 are adjacent but not siblings.
        let t = table(&[("10.128.0.0/9", 1), ("11.0.0.0/9", 1)]);
        check(&t, "10.200.0.0", 1, 9);
        check(&t, "11.1.0.0", 1, 9);
        let leaves = leaf_list(&t);
        assert!(leaves.contains(&("10.128.0.0/9".into(), 1)));
        assert!(leaves.contains(&("11.0.0.0/9".into(), 1)));
        // Siblings with different values stay apart.
        let t = table(&[("10.0.0.0/9", 1), ("10.128.0.0/9", 2)]);
        check(&t, "10.0.0.1", 1, 9);
        check(&t, "10.128.0.1", 2, 9);
    }

    #[test]
    fn merged_leaf_never_crosses_a_value_change() {
        let t = table(&[
            ("10.0.0.0/9", 1),
            ("10.128.0.0/10", 1),
            ("10.192.0.0/10", 2),
        ]);
        check(&t, "10.0.0.1", 1, 9);
        check(&t, "10.128.0.1", 1, 10);
        check(&t, "10.192.0.1", 2, 10);
        // A single differing host breaks every enclosing block.
        let t = table(&[("10.0.0.0/8", 1), ("10.255.255.255/32", 2)]);
        check(&t, "10.0.0.0", 1, 9);
        check(&t, "10.128.0.0", 1, 10);
        check(&t, "10.255.255.254", 1, 32);
        check(&t, "10.255.255.255", 2, 32);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_plain_ipv6() {
        let t = table(&[("1.2.3.0/24", 1), ("::ffff:0:0/96", 2)]);
        check(&t, "::ffff:1.2.3.4", 2, 96);
        check(&t, "1.2.3.4", 1, 24);
        check(&t, "5.6.7.8", 0, 6);
        let t = table(&[("1.2.3.0/24", 1)]);
        check(&t, "::ffff:1.2.3.4", 0, 0);
    }

    #[test]
    fn leaves_cover_each_space_once_in_order() {
        let t = table(&[
            ("10.0.0.0/8", 1),
            ("10.1.0.0/16", 2),
            ("192.168.0.0/16", 3),
            ("192.168.1.0/24", 3),
            ("2001:db8::/32", 1),
            ("2001:db8:1::/48", 2),
            ("fe80::/10", 3),
        ]);
        let leaves: Vec<(IpNet, u8)> = t.leaves().collect();
        assert_eq!(leaves.len(), t.leaf_count());
        let split = leaves.iter().position(|(n, _)| matches!(n, IpNet::V6(_)));
        let split = split.expect("there are IPv6 leaves");
        assert!(
            leaves[..split]
                .iter()
                .all(|(n, _)| matches!(n, IpNet::V4(_)))
        );
        assert!(
            leaves[split..]
                .iter()
                .all(|(n, _)| matches!(n, IpNet::V6(_)))
        );
        let blocks = |leaves: &[(IpNet, u8)]| -> Vec<(u128, u8)> {
            let start = |n: &IpNet| match n.network() {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            };
            leaves
                .iter()
                .map(|(n, _)| (start(n), n.prefix_len()))
                .collect()
        };
        let (v4, v6) = (blocks(&leaves[..split]), blocks(&leaves[split..]));
        assert_partition(&v4, 32);
        assert_partition(&v6, 128);
        for (n, v) in &leaves {
            assert_eq!(t.lookup(n.network()), (*v, n.prefix_len()), "leaf {n}");
            assert_eq!(t.lookup(n.broadcast()), (*v, n.prefix_len()), "leaf {n}");
        }
    }

    /// Asserts that (start, len) blocks of a `width`-bit space tile it in order from zero to
    /// the end.
    #[track_caller]
    fn assert_partition(blocks: &[(u128, u8)], width: u32) {
        let space_end = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        let mut next = Some(0u128);
        for &(start, len) in blocks {
            assert_eq!(Some(start), next, "gap or overlap before {start:#x}/{len}");
            let host = if u32::from(len) == width {
                0
            } else {
                space_end >> len
            };
            assert_eq!(start & host, 0, "misaligned block {start:#x}/{len}");
            let end = start + host;
            next = if end == space_end {
                None
            } else {
                Some(end + 1)
            };
        }
        assert_eq!(next, None, "space not covered to the end");
    }

    #[test]
    fn cidr_blocks_of_ranges() {
        let blocks: Vec<(u32, u8)> = cidr_blocks(1u32, 6).collect();
        assert_eq!(blocks, [(1, 32), (2, 31), (4, 31), (6, 32)]);
        let blocks: Vec<(u32, u8)> = cidr_blocks(0u32, u32::MAX).collect();
        assert_eq!(blocks, [(0, 0)]);
        let blocks: Vec<(u128, u8)> = cidr_blocks(u128::MAX, u128::MAX).collect();
        assert_eq!(blocks, [(u128::MAX, 128)]);
        let blocks: Vec<(u128, u8)> = cidr_blocks(1u128, u128::MAX).collect();
        assert_eq!(blocks.len(), 128);
        assert_eq!(blocks[127], (1u128 << 127, 1));
    }

    #[test]
    fn many_runs_use_the_index() {
        // Enough networks for a multi-slice index, checked against a direct computation.
        let mut builder = TableBuilder::new(0u16);
        for i in 0..5000u32 {
            let start = i.wrapping_mul(0x9E37_79B9) & 0xFFFF_FF00;
            builder.insert(
                IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(start), 24)),
                (i % 7) as u16 + 1,
            );
        }
        let t = builder.build();
        assert!(t.v4.index.len() > 100);
        for i in 0..5000u32 {
            let start = i.wrapping_mul(0x9E37_79B9) & 0xFFFF_FF00;
            let (value, scope) = t.lookup_v4(start | 0x42);
            assert_eq!(value, (i % 7) as u16 + 1);
            assert!(scope >= 24);
        }
        assert_eq!(t.leaves().count(), t.leaf_count());
    }

    // ---- Property tests against a brute-force reference ----

    /// The reference painting: the value of the last-inserted network containing `addr`.
    fn reference<K: Bits>(inserts: &[(K, u8, u8)], addr: K) -> u8 {
        inserts
            .iter()
            .rev()
            .find(|&&(start, len, _)| start <= addr && addr <= start + K::host_mask(len))
            .map_or(0, |&(_, _, value)| value)
    }

    /// Whether the reference painting is constant on `first..=last`: it can only change at an
    /// insert's start or just after its end, so those points (and `first`) are all it takes.
    fn reference_constant<K: Bits>(inserts: &[(K, u8, u8)], first: K, last: K) -> bool {
        let value = reference(inserts, first);
        let mut points = Vec::new();
        for &(start, len, _) in inserts {
            points.push(Some(start));
            points.push((start + K::host_mask(len)).checked_plus(K::ONE));
        }
        points
            .into_iter()
            .flatten()
            .filter(|&p| first <= p && p <= last)
            .all(|p| reference(inserts, p) == value)
    }

    /// Checks one family's answers for `queries` and its leaves against the reference.
    fn check_family<K: Bits>(
        inserts: &[(K, u8, u8)],
        queries: &[K],
        salt: K,
        lookup: impl Fn(K) -> (u8, u8),
        leaves: &[(K, u8, u8)],
    ) -> Result<(), TestCaseError> {
        let width = K::WIDTH as u8;
        for &addr in queries {
            let (value, scope) = lookup(addr);
            prop_assert_eq!(value, reference(inserts, addr), "value at {:?}", addr);
            prop_assert!(scope <= width);
            let host = K::host_mask(scope);
            let first = addr ^ (addr & host);
            let last = first + host;
            // The leaf contains the address (by construction of first/last) and is constant:
            // sampled, then exactly.
            let sample = first + (salt & host);
            for probe in [first, last, sample] {
                prop_assert_eq!(
                    reference(inserts, probe),
                    value,
                    "leaf of {:?}/{} at {:?}",
                    addr,
                    scope,
                    probe
                );
            }
            prop_assert!(
                reference_constant(inserts, first, last),
                "leaf {:?}/{} not constant",
                first,
                scope
            );
            // And maximal: the parent block is not constant.
            if scope > 0 {
                let parent_host = K::host_mask(scope - 1);
                let parent_first = addr ^ (addr & parent_host);
                let parent_last = parent_first + parent_host;
                prop_assert!(
                    !reference_constant(inserts, parent_first, parent_last),
                    "parent of {:?}/{} is constant",
                    first,
                    scope
                );
            }
        }
        // The leaves tile the space in order, agree with lookups and the reference, and no two
        // sibling leaves have equal values.
        let mut next = Some(K::ZERO);
        let mut by_block = BTreeMap::new();
        for &(start, len, value) in leaves {
            prop_assert_eq!(Some(start), next);
            let host = K::host_mask(len);
            prop_assert_eq!(start & host, K::ZERO, "misaligned leaf");
            let last = start + host;
            prop_assert_eq!(lookup(start), (value, len));
            prop_assert_eq!(lookup(last), (value, len));
            prop_assert_eq!(reference(inserts, start), value);
            next = last.checked_plus(K::ONE);
            by_block.insert((start, len), value);
        }
        prop_assert_eq!(next, None);
        for (&(start, len), &value) in &by_block {
            if len > 0 {
                let sibling = start ^ (K::ONE << (K::WIDTH - u32::from(len)));
                prop_assert_ne!(
                    by_block.get(&(sibling, len)),
                    Some(&value),
                    "equal siblings"
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// IPv4: random paint sequences with few values, clustered so that networks nest,
        /// touch and merge often.
        #[test]
        fn ipv4_matches_reference(
            inserts in prop::collection::vec((addr_v4(), 0u8..=32, 0u8..4), 0..24),
            extra in prop::collection::vec(addr_v4(), 0..16),
            salt in any::<u32>(),
        ) {
            let inserts: Vec<(u32, u8, u8)> =
                inserts.into_iter().map(|(a, len, v)| (a & !u32::host_mask(len), len, v)).collect();
            let mut builder = TableBuilder::new(0u8);
            for &(start, len, value) in &inserts {
                builder.insert(IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::from(start), len)), value);
            }
            let t = builder.build();
            let queries = interesting(&inserts, &extra);
            let leaves: Vec<(u32, u8, u8)> = t
                .leaves()
                .filter_map(|(n, v)| match n {
                    IpNet::V4(n) => Some((u32::from(n.network()), n.prefix_len(), v)),
                    IpNet::V6(_) => None,
                })
                .collect();
            prop_assert_eq!(leaves.len() + 1, t.leaf_count());
            check_family(&inserts, &queries, salt, |a| t.lookup_v4(a), &leaves)?;
            for &a in &queries {
                prop_assert_eq!(t.lookup(IpAddr::V4(Ipv4Addr::from(a))), t.lookup_v4(a));
            }
            prop_assert_eq!(t.lookup_v6(0x1234), (0, 0));
        }

        /// IPv6: the same, with prefixes up to /128.
        #[test]
        fn ipv6_matches_reference(
            inserts in prop::collection::vec((addr_v6(), 0u8..=128, 0u8..4), 0..24),
            extra in prop::collection::vec(addr_v6(), 0..16),
            salt in any::<u128>(),
        ) {
            let inserts: Vec<(u128, u8, u8)> =
                inserts.into_iter().map(|(a, len, v)| (a & !u128::host_mask(len), len, v)).collect();
            let mut builder = TableBuilder::new(0u8);
            for &(start, len, value) in &inserts {
                builder.insert(IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::from(start), len)), value);
            }
            let t = builder.build();
            let queries = interesting(&inserts, &extra);
            let leaves: Vec<(u128, u8, u8)> = t
                .leaves()
                .filter_map(|(n, v)| match n {
                    IpNet::V6(n) => Some((u128::from(n.network()), n.prefix_len(), v)),
                    IpNet::V4(_) => None,
                })
                .collect();
            prop_assert_eq!(leaves.len() + 1, t.leaf_count());
            check_family(&inserts, &queries, salt, |a| t.lookup_v6(a), &leaves)?;
            for &a in &queries {
                prop_assert_eq!(t.lookup(IpAddr::V6(Ipv6Addr::from(a))), t.lookup_v6(a));
            }
            prop_assert_eq!(t.lookup_v4(0x1234), (0, 0));
        }
    }

    /// Addresses worth querying: every insert's first and last address and their outside
    /// neighbours, plus `extra`.
    fn interesting<K: Bits>(inserts: &[(K, u8, u8)], extra: &[K]) -> Vec<K> {
        let mut queries = extra.to_vec();
        queries.extend([K::ZERO, K::MAX]);
        for &(start, len, _) in inserts {
            let last = start + K::host_mask(len);
            queries.extend([start, last]);
            if start > K::ZERO {
                queries.push(start - K::ONE);
            }
            queries.extend(last.checked_plus(K::ONE));
        }
        queries
    }

    /// Clustered IPv4 addresses: one of a few bases with a random number of low bits flipped.
    fn addr_v4() -> impl Strategy<Value = u32> {
        let bases = prop::sample::select(vec![
            0u32,
            0x0A00_0000,
            0x7FFF_FFFF,
            0xC0A8_0100,
            0xFFFF_FFFF,
        ]);
        (bases, any::<u32>(), 0u32..=32).prop_map(|(base, noise, bits)| {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX >> (32 - bits)
            };
            base ^ (noise & mask)
        })
    }

    /// Clustered IPv6 addresses: one of a few bases with a random number of low bits flipped.
    fn addr_v6() -> impl Strategy<Value = u128> {
        let bases = prop::sample::select(vec![
            0u128,
            0x2001_0db8_0000_0000_0000_0000_0000_0000,
            0x0000_0000_0000_0000_0000_ffff_0a00_0000,
            u128::MAX >> 1,
            u128::MAX,
        ]);
        (bases, any::<u128>(), 0u32..=128).prop_map(|(base, noise, bits)| {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX >> (128 - bits)
            };
            base ^ (noise & mask)
        })
    }
}
