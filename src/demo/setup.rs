//! The demo's files and the shape of its set-up, read from its config.
//!
//! The example config, its zone and the geo database are embedded in the binary, so
//! `meridian demo` works from any directory. They are written into a fresh temporary
//! directory with the same layout as the repository (`examples/three-regions/` beside
//! `geodata/`), so the config's relative paths hold unchanged.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_SET, ProbeUrl, ServiceAnswer};

/// `examples/three-regions/meridian.toml`.
pub const CONFIG: &str = include_str!("../../examples/three-regions/meridian.toml");

/// `examples/three-regions/zones/example.test.zone`.
pub const ZONE: &str = include_str!("../../examples/three-regions/zones/example.test.zone");

/// `geodata/world-sample.mmdb`, built from `geodata/world-sample.csv` by `meridian geo build`.
pub const GEO_DATABASE: &[u8] = include_bytes!("../../geodata/world-sample.mmdb");

/// The address the shipped files use; `--address` replaces it everywhere.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1";

/// The demo's files on disk; the directory is removed when this is dropped.
#[derive(Debug)]
pub struct DemoFiles {
    /// The temporary directory holding everything.
    pub root: PathBuf,
    /// The config file to load.
    pub config: PathBuf,
}

impl DemoFiles {
    /// Writes the config, zone and geo database for `address` into a new temporary directory.
    pub fn write(address: Ipv4Addr) -> Result<DemoFiles, String> {
        let root = std::env::temp_dir().join(format!(
            "meridian-demo-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let files = DemoFiles {
            config: root.join("examples/three-regions/meridian.toml"),
            root,
        };
        let address = address.to_string();
        let write = |path: &Path, contents: &[u8]| -> Result<(), String> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|err| format!("{}: cannot create: {err}", parent.display()))?;
            }
            std::fs::write(path, contents)
                .map_err(|err| format!("{}: cannot write: {err}", path.display()))
        };
        write(
            &files.config,
            CONFIG.replace(DEFAULT_ADDRESS, &address).as_bytes(),
        )?;
        write(
            &files
                .root
                .join("examples/three-regions/zones/example.test.zone"),
            ZONE.replace(DEFAULT_ADDRESS, &address).as_bytes(),
        )?;
        write(&files.root.join("geodata/world-sample.mmdb"), GEO_DATABASE)?;
        Ok(files)
    }
}

impl Drop for DemoFiles {
    /// Removes the temporary directory.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One region of the demo: its pool and the sample backends behind it.
#[derive(Debug, Clone)]
pub struct RegionSetup {
    /// The region's name (`eu-west`).
    pub name: String,
    /// The listener of the pool the region's monitor probes.
    pub pool: SocketAddr,
    /// The pool's health path.
    pub health_path: String,
    /// The backends of the pool's default set: (name, address); names are `REGION-N`.
    pub backends: Vec<(String, SocketAddr)>,
}

/// What the demo needs to know of its config: where everything listens.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The loopback address of every listener.
    pub address: Ipv4Addr,
    /// The DNS address (UDP and TCP).
    pub dns: SocketAddr,
    /// The admin API's address.
    pub admin: SocketAddr,
    /// The regions, in config order.
    pub regions: Vec<RegionSetup>,
    /// The GSLB names, absolute and lowercase (`www.example.test.`).
    pub services: Vec<String>,
    /// CNAME targets of the services' answers (lowercase, absolute) and the region each
    /// stands for.
    pub targets: Vec<(String, usize)>,
}

impl Topology {
    /// Reads the demo's shape from `config`: each region's monitor must probe one of the
    /// `[balancers.*]` listeners.
    pub fn from_config(config: &Config, address: Ipv4Addr) -> Result<Topology, String> {
        let file = config.path.display();
        let dns = *config
            .dns
            .listen
            .first()
            .ok_or_else(|| format!("{file}: dns.listen is empty"))?;
        let admin = config
            .admin
            .listen
            .ok_or_else(|| format!("{file}: the demo needs [admin] listen"))?;
        let mut regions = Vec::with_capacity(config.regions.len());
        for region in &config.regions {
            let balancer = region
                .monitors
                .iter()
                .filter_map(|monitor| match &monitor.url {
                    ProbeUrl::Http(url) => url.socket_addrs(|| None).ok(),
                    ProbeUrl::Tcp { .. } => None,
                })
                .flatten()
                .find_map(|addr| config.balancers.iter().find(|b| b.listen == addr))
                .ok_or_else(|| {
                    format!(
                        "{file}: region {}: no monitor probes a [balancers.*] listener",
                        region.name
                    )
                })?;
            let backends = balancer
                .sets
                .iter()
                .find(|set| set.name == DEFAULT_SET)
                .map(|set| {
                    set.backends
                        .iter()
                        .enumerate()
                        .map(|(index, backend)| {
                            (format!("{}-{}", region.name, index + 1), backend.addr)
                        })
                        .collect()
                })
                .unwrap_or_default();
            regions.push(RegionSetup {
                name: region.name.clone(),
                pool: balancer.listen,
                health_path: balancer.health_path.clone(),
                backends,
            });
        }
        let mut targets = Vec::new();
        for service in &config.services {
            for (&region, answer) in &service.answers {
                if let ServiceAnswer::Cname(target) = answer {
                    let target = target.to_ascii().to_ascii_lowercase();
                    if !targets.iter().any(|(known, _)| *known == target) {
                        targets.push((target, usize::from(region)));
                    }
                }
            }
        }
        Ok(Topology {
            address,
            dns,
            admin,
            regions,
            services: config
                .services
                .iter()
                .map(|service| service.name.to_ascii().to_ascii_lowercase())
                .collect(),
            targets,
        })
    }

    /// The region a CNAME target stands for.
    pub fn region_of_target(&self, target: &str) -> Option<&RegionSetup> {
        let target = target.to_ascii_lowercase();
        self.targets
            .iter()
            .find(|(known, _)| known.trim_end_matches('.') == target.trim_end_matches('.'))
            .and_then(|&(_, region)| self.regions.get(region))
    }

    /// Every address the demo listens on, with what listens there and whether it is UDP.
    pub fn listeners(&self) -> Vec<(SocketAddr, String, bool)> {
        let mut listeners = vec![
            (self.dns, "DNS over UDP".to_string(), true),
            (self.dns, "DNS over TCP".to_string(), false),
            (self.admin, "the admin API".to_string(), false),
            (
                SocketAddr::from((self.address, super::CONTROL_PORT)),
                "the demo's control API".to_string(),
                false,
            ),
        ];
        for region in &self.regions {
            listeners.push((region.pool, format!("the {} pool", region.name), false));
            for (name, addr) in &region.backends {
                listeners.push((*addr, format!("sample backend {name}"), false));
            }
        }
        listeners
    }
}

/// Checks that every port the demo needs is free, so a taken one fails the start with a
/// message that names it, before anything runs.
pub fn check_ports(topology: &Topology) -> Result<(), String> {
    for (addr, what, udp) in topology.listeners() {
        let result = if udp {
            UdpSocket::bind(addr).map(drop)
        } else {
            TcpListener::bind(addr).map(drop)
        };
        if let Err(err) = result {
            return Err(port_error(addr, &what, &err));
        }
    }
    Ok(())
}

/// The error for a port the demo cannot listen on: which, for what, and what to do.
pub fn port_error(addr: SocketAddr, what: &str, err: &std::io::Error) -> String {
    let next = match addr.ip() {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            Ipv4Addr::new(a, b, c, if d >= 254 { 2 } else { d + 1 })
        }
        std::net::IpAddr::V6(_) => Ipv4Addr::new(127, 0, 0, 2),
    };
    format!(
        "cannot listen on {addr} (port {port}, for {what}): {err}.\n\
         Another program, or another `meridian demo`, probably uses port {port} on {ip}: stop it, \
         or run the demo on another loopback address: meridian demo --address {next}",
        port = addr.port(),
        ip = addr.ip(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_files_use_the_default_address_only() {
        for (name, text) in [("config", CONFIG), ("zone", ZONE)] {
            for (index, _) in text.match_indices("127.") {
                let rest = &text[index + 4..];
                if !rest.starts_with(|c: char| c.is_ascii_digit()) {
                    continue;
                }
                assert!(
                    text[index..].starts_with(DEFAULT_ADDRESS),
                    "{name}: a loopback address other than {DEFAULT_ADDRESS} at byte {index}"
                );
            }
        }
    }

    #[test]
    fn the_embedded_example_loads_at_another_address() {
        let files = DemoFiles::write(Ipv4Addr::new(127, 9, 8, 7)).unwrap();
        let loaded = crate::snapshot::load(&files.config).unwrap();
        let topology = Topology::from_config(&loaded.config, Ipv4Addr::new(127, 9, 8, 7)).unwrap();
        assert_eq!(topology.dns.to_string(), "127.9.8.7:15353");
        assert_eq!(topology.admin.to_string(), "127.9.8.7:18053");
        let names: Vec<&str> = topology.regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["ap-southeast", "eu-west", "us-east"]);
        for region in &topology.regions {
            assert_eq!(region.pool.ip(), topology.dns.ip(), "{}", region.name);
            assert!(region.backends.len() >= 2, "{}", region.name);
        }
        assert_eq!(
            topology
                .region_of_target("EU-WEST.pool.example.test")
                .map(|r| r.name.as_str()),
            Some("eu-west")
        );
        let root = files.root.clone();
        drop(files);
        assert!(!root.exists());
    }

    #[test]
    fn a_taken_port_is_named_with_what_to_do() {
        let err = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let text = port_error("127.0.0.1:18053".parse().unwrap(), "the admin API", &err);
        assert!(text.contains("port 18053"), "{text}");
        assert!(text.contains("the admin API"), "{text}");
        assert!(text.contains("meridian demo --address 127.0.0.2"), "{text}");
    }
}
