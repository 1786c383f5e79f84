//! Benchmarks of geo steering's query-time cost: one lookup in a compiled map of world size,
//! and `GeoSnapshot::locate` with the ECS rules around it.
//!
//! Run with `cargo bench --bench geo`. The table is synthetic but world-sized: ~385k IPv4 and
//! ~277k IPv6 networks (the size of Debian's tor-geoipdb) with ~250 distinct values.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use meridian::dns::wire::{ClientSubnet, family};
use meridian::geo::table::{PrefixTable, TableBuilder};
use meridian::geo::{CompiledMap, GeoSnapshot};

/// A small deterministic generator, so every run measures the same table and addresses.
struct XorShift(u64);

impl XorShift {
    /// The next pseudo-random value.
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A world-sized table: random IPv4 /16../24 and IPv6 /19../48 networks, ~250 values.
fn world_table(rng: &mut XorShift) -> PrefixTable<u32> {
    let mut builder = TableBuilder::new(0u32);
    for _ in 0..385_000 {
        let len = 16 + (rng.next() % 9) as u8;
        let addr = std::net::Ipv4Addr::from(rng.next() as u32);
        let net = Ipv4Net::new(addr, len).expect("length in range").trunc();
        builder.insert(IpNet::V4(net), (rng.next() % 250) as u32);
    }
    for _ in 0..277_000 {
        let len = 19 + (rng.next() % 30) as u8;
        // Mostly inside 2000::/3, like real allocations.
        let bits = (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> 3 | (1u128 << 125);
        let net = Ipv6Net::new(std::net::Ipv6Addr::from(bits), len)
            .expect("length in range")
            .trunc();
        builder.insert(IpNet::V6(net), (rng.next() % 250) as u32);
    }
    builder.build()
}

/// Lookups straight in the table, and through `locate` with and without ECS.
fn bench_geo(c: &mut Criterion) {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let table = world_table(&mut rng);
    println!(
        "world table: {} leaves, {} KiB",
        table.leaf_count(),
        table.memory_bytes() / 1024
    );
    let v4: Vec<u32> = (0..4096).map(|_| rng.next() as u32).collect();
    let v6: Vec<u128> = (0..4096)
        .map(|_| (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> 3 | 1u128 << 125)
        .collect();
    let mut group = c.benchmark_group("geo");
    let mut index = 0;
    group.bench_function("lookup_v4", |b| {
        b.iter(|| {
            index = (index + 1) % v4.len();
            table.lookup_v4(black_box(v4[index]))
        })
    });
    group.bench_function("lookup_v6", |b| {
        b.iter(|| {
            index = (index + 1) % v6.len();
            table.lookup_v6(black_box(v6[index]))
        })
    });
    let lists: Box<[Box<[u16]>]> = (0..250u16)
        .map(|value| vec![value % 4, (value + 1) % 4].into_boxed_slice())
        .collect();
    let geo = GeoSnapshot {
        maps: Box::new([CompiledMap {
            name: "world".into(),
            table,
            lists,
            ignore_ecs: false,
        }]),
        ecs: true,
        max_source_v4: 24,
        max_source_v6: 56,
    };
    let subnets: Vec<ClientSubnet> = v4
        .iter()
        .map(|&addr| {
            let mut address = [0u8; 16];
            address[..4].copy_from_slice(&(addr & 0xffff_ff00).to_be_bytes());
            ClientSubnet {
                family: family::IPV4,
                source: 24,
                address,
            }
        })
        .collect();
    let resolver: IpAddr = "81.2.69.142".parse().expect("fixed address");
    group.bench_function("locate_ecs_v4", |b| {
        b.iter(|| {
            index = (index + 1) % subnets.len();
            geo.locate(0, resolver, Some(black_box(&subnets[index])))
        })
    });
    group.bench_function("locate_resolver", |b| {
        b.iter(|| geo.locate(0, black_box(resolver), None))
    });
    group.finish();
}

criterion_group!(benches, bench_geo);
criterion_main!(benches);
