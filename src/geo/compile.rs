//! Compiling maps: every configured map becomes a prefix table over the whole address space
//! whose leaves are ordered region lists, so a query costs one table lookup.
//!
//! Precedence, lowest first, each layer painted over the one before inside its networks: the
//! map's default; the location layer (most specific location path, else distance order when
//! `auto`, else default) over every network of the City/Country database; ASN rules over the
//! networks of the ASN database; nets overrides (less specific first, so more specific win).

use std::net::IpAddr;
use std::path::Path;

use rustc_hash::FxHashMap;

use super::source::{Database, DatabaseKind, GeoError, Location, read_nets};
use super::table::{PrefixTable, TableBuilder};
use crate::config::{Config, LocationPath, MapConfig, Region, RegionId};
use crate::dns::wire::{ClientSubnet, family};

/// Mean Earth radius in kilometres, for great-circle distances.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// One map, compiled.
#[derive(Debug)]
pub struct CompiledMap {
    /// The map's name.
    pub name: String,
    /// Address -> index into `lists`, with the merged prefix length as ECS scope.
    pub table: PrefixTable<u32>,
    /// Distinct ordered region lists the table points at.
    pub lists: Box<[Box<[RegionId]>]>,
    /// Steer by the resolver's address only.
    pub ignore_ecs: bool,
}

/// Every map compiled, plus the ECS settings the query path needs.
#[derive(Debug)]
pub struct GeoSnapshot {
    /// Compiled maps, in the order of `Config::maps`.
    pub maps: Box<[CompiledMap]>,
    /// Whether ECS is used at all.
    pub ecs: bool,
    /// Longest IPv4 ECS source used.
    pub max_source_v4: u8,
    /// Longest IPv6 ECS source used.
    pub max_source_v6: u8,
}

impl GeoSnapshot {
    /// No maps: what a config without geo sections compiles to.
    pub fn empty() -> GeoSnapshot {
        GeoSnapshot {
            maps: Box::new([]),
            ecs: true,
            max_source_v4: 24,
            max_source_v6: 56,
        }
    }

    /// The ordered regions of map `map` for a query from `resolver` carrying `ecs`, and the ECS
    /// SCOPE to answer with: the merged prefix length the choice depends on, or 0 when the
    /// client subnet was not used.
    ///
    /// ECS is used when enabled for the map, with a non-zero SOURCE and a globally routable
    /// address; its address is first cut to the configured maximum source length.
    pub fn locate(
        &self,
        map: usize,
        resolver: IpAddr,
        ecs: Option<&ClientSubnet>,
    ) -> (&[RegionId], u8) {
        let Some(map) = self.maps.get(map) else {
            return (&[], 0);
        };
        let subnet =
            ecs.filter(|ecs| self.ecs && !map.ignore_ecs && ecs.source > 0 && is_global(ecs.ip()));
        let (index, scope) = match subnet {
            Some(ecs) if ecs.family == family::IPV4 => {
                let source = ecs.source.min(self.max_source_v4);
                let [a, b, c, d, ..] = ecs.address;
                let bits = u32::from_be_bytes([a, b, c, d]) & mask_v4(source);
                map.table.lookup_v4(bits)
            }
            Some(ecs) => {
                let source = ecs.source.min(self.max_source_v6);
                let bits = u128::from_be_bytes(ecs.address) & mask_v6(source);
                map.table.lookup_v6(bits)
            }
            None => (map.table.lookup(resolver).0, 0),
        };
        (
            map.lists
                .get(index as usize)
                .map_or(&[][..], |list| &list[..]),
            scope,
        )
    }
}

impl GeoSnapshot {
    /// The client as a hash key for weighted and spill choices, and the ECS SCOPE that key
    /// depends on. With a usable ECS option (the same rules as [`GeoSnapshot::locate`], for map
    /// `map` or, without a map, the `[geo]` settings alone) the key is the subnet cut to the
    /// capped SOURCE and the scope is that SOURCE; otherwise the key is the resolver's address
    /// and the scope is 0.
    pub fn client_key(
        &self,
        map: Option<usize>,
        resolver: IpAddr,
        ecs: Option<&ClientSubnet>,
    ) -> (u64, u8) {
        let ignore = map
            .and_then(|map| self.maps.get(map))
            .is_some_and(|map| map.ignore_ecs);
        let subnet = ecs.filter(|ecs| self.ecs && !ignore && ecs.source > 0 && is_global(ecs.ip()));
        match subnet {
            Some(ecs) if ecs.family == family::IPV4 => {
                let source = ecs.source.min(self.max_source_v4);
                let [a, b, c, d, ..] = ecs.address;
                let bits = u32::from_be_bytes([a, b, c, d]) & mask_v4(source);
                (u64::from(bits) | 4 << 32, source)
            }
            Some(ecs) => {
                let source = ecs.source.min(self.max_source_v6);
                let bits = u128::from_be_bytes(ecs.address) & mask_v6(source);
                (fold(bits), source)
            }
            None => match resolver {
                IpAddr::V4(v4) => (u64::from(u32::from(v4)) | 4 << 32, 0),
                IpAddr::V6(v6) => (fold(u128::from(v6)), 0),
            },
        }
    }
}

/// Folds an IPv6 address into 64 bits, keeping every bit's influence.
fn fold(bits: u128) -> u64 {
    (bits >> 64) as u64 ^ crate::policy::mix(bits as u64) ^ 6
}

/// The netmask of an IPv4 prefix of `len` bits.
fn mask_v4(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

/// The netmask of an IPv6 prefix of `len` bits.
fn mask_v6(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

/// Whether `ip` is a globally routable unicast address. Private, loopback, link-local, shared
/// (100.64/10), unspecified, multicast and reserved addresses are not, so an ECS option
/// carrying one is treated as absent.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (b & 0xc0) == 64)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00
                || (segments[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| !is_global(IpAddr::V4(v4))))
        }
    }
}

/// What compiling found, for `meridian check` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileReport {
    /// Networks read from the location database.
    pub location_networks: usize,
    /// Networks read from the ASN database.
    pub asn_networks: usize,
    /// Nets override rules applied.
    pub nets_rules: usize,
    /// Per map: name, leaves after merging, bytes held.
    pub maps: Vec<(String, usize, usize)>,
}

/// Interns region lists so the table stores small indices.
#[derive(Default)]
struct Lists {
    /// The lists, by index.
    lists: Vec<Box<[RegionId]>>,
    /// Index of each list.
    index: FxHashMap<Box<[RegionId]>, u32>,
}

impl Lists {
    /// The index of `list`, adding it if new.
    fn intern(&mut self, list: &[RegionId]) -> u32 {
        if let Some(index) = self.index.get(list) {
            return *index;
        }
        let index = self.lists.len() as u32;
        self.lists.push(list.into());
        self.index.insert(list.into(), index);
        index
    }
}

/// One map while it is being compiled.
struct Building<'c> {
    /// Its configuration.
    config: &'c MapConfig,
    /// Interned region lists.
    lists: Lists,
    /// The table under construction.
    builder: TableBuilder<u32>,
    /// Region list index per location index of the database, computed on first use.
    by_location: Vec<Option<u32>>,
}

/// Compiles every map of `config` against its geo sources.
pub fn compile(config: &Config) -> Result<(GeoSnapshot, CompileReport), GeoError> {
    let mut location_db = None;
    let mut asn_db = None;
    for path in &config.geo.databases {
        let db = Database::open(path)?;
        let slot = match db.kind() {
            DatabaseKind::Location => &mut location_db,
            DatabaseKind::Asn => &mut asn_db,
        };
        if let Some(previous) = slot.replace(db) {
            return Err(GeoError::Corrupt {
                path: path.clone(),
                message: format!(
                    "a second database of the same model as {}: list one City/Country and at most one ASN database",
                    previous.path().display()
                ),
            });
        }
    }
    let mut report = CompileReport {
        location_networks: 0,
        asn_networks: 0,
        nets_rules: 0,
        maps: Vec::new(),
    };
    let mut maps: Vec<Building<'_>> = config
        .maps
        .iter()
        .map(|map| {
            let mut lists = Lists::default();
            let default = lists.intern(&map.default);
            Building {
                config: map,
                lists,
                builder: TableBuilder::new(default),
                by_location: Vec::new(),
            }
        })
        .collect();

    if let Some(db) = &location_db {
        // One pass over the database for all maps, painting as it goes (nothing per network is
        // kept); each distinct location is resolved once per map, the first time it is seen.
        let disjoint = db.disjoint();
        let defaults: Vec<u32> = maps
            .iter_mut()
            .map(|map| map.lists.intern(&map.config.default))
            .collect();
        db.locations(|network, index, location| {
            report.location_networks += 1;
            let index = index as usize;
            for (map, &default) in maps.iter_mut().zip(&defaults) {
                if map.by_location.len() <= index {
                    map.by_location.resize(index + 1, None);
                }
                let list = *map.by_location[index].get_or_insert_with(|| {
                    map.lists
                        .intern(&regions_for(map.config, &config.regions, location))
                });
                // Disjoint networks over the default need no paint; overlapping ones (CSV
                // sources) must paint even the default to override less specific networks.
                if list != default || !disjoint {
                    map.builder.insert(network, list);
                }
            }
        })?;
    }

    if let Some(db) = &asn_db
        && maps.iter().any(|map| !map.config.asn.is_empty())
    {
        db.asns(|network, asn| {
            report.asn_networks += 1;
            for map in &mut maps {
                if let Some(regions) = map.config.asn.get(&asn) {
                    let list = map.lists.intern(regions);
                    map.builder.insert(network, list);
                }
            }
        })?;
    }

    if let Some(path) = &config.geo.nets {
        let mut rules = read_nets(path)?;
        rules.sort_by_key(|rule| rule.network.prefix_len());
        report.nets_rules = rules.len();
        for rule in &rules {
            let ids = nets_regions(path, &rule.regions, rule.line, &config.regions)?;
            for map in &mut maps {
                let list = map.lists.intern(&ids);
                map.builder.insert(rule.network, list);
            }
        }
    }

    let maps: Box<[CompiledMap]> = maps
        .into_iter()
        .map(|map| {
            let table = map.builder.build();
            report.maps.push((
                map.config.name.clone(),
                table.leaf_count(),
                table.memory_bytes(),
            ));
            CompiledMap {
                name: map.config.name.clone(),
                table,
                lists: map.lists.lists.into_boxed_slice(),
                ignore_ecs: map.config.ignore_ecs,
            }
        })
        .collect();
    let snapshot = GeoSnapshot {
        maps,
        ecs: config.geo.ecs,
        max_source_v4: config.geo.ecs_max_source_v4,
        max_source_v6: config.geo.ecs_max_source_v6,
    };
    Ok((snapshot, report))
}

/// Region ids for the names of a nets rule.
fn nets_regions(
    path: &Path,
    names: &[String],
    line: usize,
    regions: &[Region],
) -> Result<Vec<RegionId>, GeoError> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let Some(id) = regions.iter().position(|region| region.name == *name) else {
            let known: Vec<&str> = regions.iter().map(|region| region.name.as_str()).collect();
            return Err(GeoError::Nets {
                path: path.to_path_buf(),
                line,
                message: format!(
                    "unknown region {name:?} (known regions: {})",
                    known.join(", ")
                ),
            });
        };
        if !ids.contains(&(id as RegionId)) {
            ids.push(id as RegionId);
        }
    }
    Ok(ids)
}

/// The ordered regions `map` gives a client at `location`: the most specific matching location
/// path; else, with `auto` and known coordinates, the map's default regions nearest first; else
/// the default.
pub fn regions_for(map: &MapConfig, regions: &[Region], location: &Location) -> Vec<RegionId> {
    if let Some(list) = matching_path(map, location) {
        return list.to_vec();
    }
    if map.auto
        && let Some((lat, lon)) = location.coordinates
    {
        let mut ordered = map.default.clone();
        let distance = |id: &RegionId| {
            regions
                .get(usize::from(*id))
                .and_then(|region| region.location)
                .map_or(f64::INFINITY, |(region_lat, region_lon)| {
                    great_circle_km(lat, lon, region_lat, region_lon)
                })
        };
        ordered.sort_by(|a, b| distance(a).total_cmp(&distance(b)));
        return ordered;
    }
    map.default.clone()
}

/// The region list of the most specific location path of `map` that `location` matches.
fn matching_path<'m>(map: &'m MapConfig, location: &Location) -> Option<&'m [RegionId]> {
    let continent = location.continent.as_deref()?;
    let mut path = LocationPath {
        continent: continent.to_string(),
        country: None,
        subdivision: None,
        city: None,
    };
    let mut best = map.locations.get(&path);
    if let Some(country) = location.country.as_deref() {
        path.country = Some(country.to_ascii_uppercase());
        best = map.locations.get(&path).or(best);
        if let Some(subdivision) = location.subdivision.as_deref() {
            path.subdivision = Some(subdivision.to_ascii_uppercase());
            best = map.locations.get(&path).or(best);
            if let Some(city) = location.city.as_deref() {
                path.city = Some(city.to_lowercase());
                best = map.locations.get(&path).or(best);
            }
        }
    }
    best.map(Vec::as_slice)
}

/// Great-circle distance in kilometres between two points given in degrees (haversine).
pub fn great_circle_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let dphi = (lat2 - lat1).to_radians();
    let dlambda = (lon2 - lon1).to_radians();
    let a = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::location_path;

    /// Regions a, b, c with locations (a: Dublin, b: Virginia, c: Mumbai).
    fn regions() -> Vec<Region> {
        [("a", 53.35, -6.26), ("b", 39.0, -77.5), ("c", 19.07, 72.88)]
            .into_iter()
            .map(|(name, lat, lon)| Region {
                name: name.into(),
                location: Some((lat, lon)),
                capacity: None,
                monitors: Vec::new(),
                health: Default::default(),
            })
            .collect()
    }

    /// A map over regions 0..3 with the given path rules.
    fn map(rules: &[(&str, &[RegionId])], auto: bool) -> MapConfig {
        MapConfig {
            name: "m".into(),
            default: vec![1, 0, 2],
            locations: rules
                .iter()
                .map(|(path, ids)| (location_path(path).unwrap(), ids.to_vec()))
                .collect(),
            asn: Default::default(),
            auto,
            ignore_ecs: false,
        }
    }

    /// A location with the given parts.
    fn at(
        continent: &str,
        country: &str,
        subdivision: &str,
        city: &str,
        coordinates: Option<(f64, f64)>,
    ) -> Location {
        let part = |text: &str| (!text.is_empty()).then(|| Box::from(text));
        Location {
            continent: part(continent),
            country: part(country),
            subdivision: part(subdivision),
            city: part(city),
            coordinates,
        }
    }

    #[test]
    fn most_specific_path_wins() {
        let map = map(
            &[
                ("EU", &[0]),
                ("EU/GB", &[0, 1]),
                ("EU/GB/ENG", &[2]),
                ("EU/GB/ENG/London", &[1]),
            ],
            false,
        );
        let regions = regions();
        assert_eq!(
            regions_for(&map, &regions, &at("EU", "GB", "ENG", "london", None)),
            [1]
        );
        assert_eq!(
            regions_for(&map, &regions, &at("EU", "GB", "ENG", "leeds", None)),
            [2]
        );
        assert_eq!(
            regions_for(&map, &regions, &at("EU", "GB", "SCT", "", None)),
            [0, 1]
        );
        assert_eq!(
            regions_for(&map, &regions, &at("EU", "FR", "", "", None)),
            [0]
        );
        assert_eq!(
            regions_for(&map, &regions, &at("NA", "US", "", "", None)),
            [1, 0, 2],
            "default"
        );
        assert_eq!(
            regions_for(&map, &regions, &Location::default()),
            [1, 0, 2],
            "unknown: default"
        );
        // A path is only matched under its own continent.
        let map2 = self::map(&[("NA/GB", &[2])], false);
        assert_eq!(
            regions_for(&map2, &regions, &at("EU", "GB", "", "", None)),
            [1, 0, 2]
        );
    }

    #[test]
    fn auto_orders_by_distance_only_where_no_path_matches() {
        let map = map(&[("EU", &[0])], true);
        let regions = regions();
        // Delhi: Mumbai, then Dublin, then Virginia.
        assert_eq!(
            regions_for(&map, &regions, &at("AS", "IN", "", "", Some((28.6, 77.2)))),
            [2, 0, 1]
        );
        // Boston: Virginia, Dublin, Mumbai.
        assert_eq!(
            regions_for(
                &map,
                &regions,
                &at("NA", "US", "", "", Some((42.36, -71.06)))
            ),
            [1, 0, 2]
        );
        assert_eq!(
            regions_for(&map, &regions, &at("EU", "FR", "", "", Some((48.85, 2.35)))),
            [0],
            "path wins"
        );
        assert_eq!(
            regions_for(&map, &regions, &at("AS", "IN", "", "", None)),
            [1, 0, 2],
            "no coordinates"
        );
    }

    #[test]
    fn great_circle_distances() {
        // London to New York is about 5570 km.
        let km = great_circle_km(51.5074, -0.1278, 40.7128, -74.0060);
        assert!((km - 5570.0).abs() < 10.0, "{km}");
        assert_eq!(great_circle_km(10.0, 20.0, 10.0, 20.0), 0.0);
        // Antipodes: half the circumference.
        let half = great_circle_km(0.0, 0.0, 0.0, 180.0);
        assert!((half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }

    #[test]
    fn masks() {
        assert_eq!(mask_v4(0), 0);
        assert_eq!(mask_v4(24), 0xffff_ff00);
        assert_eq!(mask_v4(32), u32::MAX);
        assert_eq!(mask_v6(0), 0);
        assert_eq!(mask_v6(56), u128::MAX << 72);
        assert_eq!(mask_v6(128), u128::MAX);
    }

    #[test]
    fn global_addresses() {
        for global in ["81.2.69.142", "8.8.8.8", "2a02:d180::1", "2001:4860::1"] {
            assert!(is_global(global.parse().unwrap()), "{global}");
        }
        let special = [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.1.1",
            "0.1.2.3",
            "100.64.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
        ];
        for address in special {
            assert!(!is_global(address.parse().unwrap()), "{address}");
        }
    }

    /// A geo snapshot with one map: 81.2.69.0/24 -> list 1, everything else list 0.
    fn snapshot(ignore_ecs: bool) -> GeoSnapshot {
        let mut builder = TableBuilder::new(0u32);
        builder.insert("81.2.69.0/24".parse().unwrap(), 1);
        builder.insert("2a02:d180::/29".parse().unwrap(), 1);
        GeoSnapshot {
            maps: Box::new([CompiledMap {
                name: "m".into(),
                table: builder.build(),
                lists: Box::new([Box::new([0]), Box::new([1])]),
                ignore_ecs,
            }]),
            ecs: true,
            max_source_v4: 24,
            max_source_v6: 56,
        }
    }

    /// An ECS option for `address`/`source`, with bits beyond the source cleared.
    fn subnet(address: &str, source: u8) -> ClientSubnet {
        let ip: IpAddr = address.parse().unwrap();
        let (family, octets) = match ip {
            IpAddr::V4(v4) => (family::IPV4, v4.octets().to_vec()),
            IpAddr::V6(v6) => (family::IPV6, v6.octets().to_vec()),
        };
        let mut bytes = [0u8; 16];
        bytes[..octets.len()].copy_from_slice(&octets);
        let bits = u128::from_be_bytes(bytes) & mask_v6(source);
        ClientSubnet {
            family,
            source,
            address: bits.to_be_bytes(),
        }
    }

    #[test]
    fn locate_applies_the_ecs_rules() {
        let geo = snapshot(false);
        let resolver: IpAddr = "127.0.0.1".parse().unwrap();
        let locate = |ecs: Option<ClientSubnet>| {
            let (list, scope) = geo.locate(0, resolver, ecs.as_ref());
            (list.to_vec(), scope)
        };
        assert_eq!(locate(None), (vec![0], 0), "resolver address, no scope");
        assert_eq!(locate(Some(subnet("81.2.69.0", 24))), (vec![1], 24));
        assert_eq!(
            locate(Some(subnet("81.2.69.77", 32))),
            (vec![1], 24),
            "cut to /24 first"
        );
        assert_eq!(
            locate(Some(subnet("81.2.0.0", 16))),
            (vec![0], 18),
            "scope beyond source"
        );
        assert_eq!(
            locate(Some(subnet("0.0.0.0", 0))),
            (vec![0], 0),
            "source 0: resolver"
        );
        assert_eq!(
            locate(Some(subnet("10.0.0.0", 8))),
            (vec![0], 0),
            "private: resolver"
        );
        assert_eq!(locate(Some(subnet("2a02:d180::", 48))), (vec![1], 29));
        assert_eq!(geo.locate(5, resolver, None), (&[][..], 0), "unknown map");
        let ignoring = snapshot(true);
        assert_eq!(
            ignoring.locate(0, resolver, Some(&subnet("81.2.69.0", 24))),
            (&[0][..], 0)
        );
    }
}
