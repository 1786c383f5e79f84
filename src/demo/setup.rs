//! The demo's files and the shape of its set-up, read from its config.
//!
//! The example config, its zone and the geo database are embedded in the binary, so
//! `meridian demo` works from any directory. They are written into a fresh temporary
//! directory with the same layout as the repository (`examples/three-regions/` beside
//! `geodata/`), so the config's relative paths hold unchanged. The directory is created new
//! (never an existing path) and private to the user (mode 0700), and every file in it is
//! created new, so nothing another user of a shared `/tmp` planted is followed or read.
//!
//! `--address` moves the files to another loopback address: the shipped address is replaced
//! where it stands as a whole address ([`move_address`]), and the loaded config is checked to
//! use no other ([`check_addresses`]).

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
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

/// The prefix of the temporary directory's name; the process id and a random number follow.
pub const DIRECTORY_PREFIX: &str = "meridian-demo-";

/// How many names are tried for the temporary directory before giving up: another user can
/// take a name in a shared `/tmp`, but not many in a row by chance.
const DIRECTORY_ATTEMPTS: u32 = 16;

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
        DemoFiles::write_config(address, CONFIG)
    }

    /// [`DemoFiles::write`] with `config` as the config's text (before the move to `address`).
    fn write_config(address: Ipv4Addr, config: &str) -> Result<DemoFiles, String> {
        let root = private_directory(&std::env::temp_dir())?;
        let files = DemoFiles {
            config: root.join("examples/three-regions/meridian.toml"),
            root,
        };
        // From here on, dropping `files` removes what was written.
        files.put(
            "examples/three-regions/meridian.toml",
            move_address(config, address).as_bytes(),
        )?;
        files.put(
            "examples/three-regions/zones/example.test.zone",
            move_address(ZONE, address).as_bytes(),
        )?;
        files.put("geodata/world-sample.mmdb", GEO_DATABASE)?;
        Ok(files)
    }

    /// Writes `contents` to the new file `relative` below the root, creating its directories
    /// (owner only, like the root). The file must not exist: nothing is followed or
    /// overwritten.
    fn put(&self, relative: &str, contents: &[u8]) -> Result<(), String> {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|err| format!("{}: cannot create: {err}", parent.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|err| format!("{}: cannot create: {err}", path.display()))?;
        file.write_all(contents)
            .map_err(|err| format!("{}: cannot write: {err}", path.display()))
    }
}

impl Drop for DemoFiles {
    /// Removes the temporary directory.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Creates a new directory below `parent` that only this user can enter
/// (`meridian-demo-PID-RANDOM`, mode 0700). An existing path of that name (a directory,
/// file or symbolic link someone else made) is never reused: another name is tried.
pub fn private_directory(parent: &Path) -> Result<PathBuf, String> {
    let mut last = None;
    for _ in 0..DIRECTORY_ATTEMPTS {
        let path = parent.join(format!(
            "{DIRECTORY_PREFIX}{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => last = Some(path),
            Err(err) => {
                return Err(format!(
                    "{}: cannot create the demo's temporary directory: {err} \
                     (set TMPDIR to a writable directory)",
                    path.display()
                ));
            }
        }
    }
    Err(format!(
        "{}: cannot create the demo's temporary directory: {DIRECTORY_ATTEMPTS} names in a row \
         already exist (the last: {})",
        parent.display(),
        last.map_or_else(String::new, |path| path.display().to_string())
    ))
}

/// `text` with every whole occurrence of [`DEFAULT_ADDRESS`] replaced by `address`. A whole
/// occurrence is not part of a longer number or address: `127.0.0.10`, `1127.0.0.1` and
/// `127.0.0.1.5` are left alone.
pub fn move_address(text: &str, address: Ipv4Addr) -> String {
    let to = address.to_string();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut before: Option<char> = None;
    while let Some(at) = rest.find(DEFAULT_ADDRESS) {
        let (head, tail) = rest.split_at(at);
        let after = &tail[DEFAULT_ADDRESS.len()..];
        let previous = head.chars().next_back().or(before);
        let joined_before = previous.is_some_and(|c| c.is_ascii_alphanumeric() || c == '.');
        let mut next = after.chars();
        let joined_after = match next.next() {
            Some(c) if c.is_ascii_alphanumeric() => true,
            Some('.') => next.next().is_some_and(|c| c.is_ascii_digit()),
            _ => false,
        };
        out.push_str(head);
        if joined_before || joined_after {
            out.push_str(DEFAULT_ADDRESS);
        } else {
            out.push_str(&to);
        }
        before = DEFAULT_ADDRESS.chars().next_back();
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Checks that everything the loaded `config` listens on, forwards to or probes is on the
/// demo's `address`, so the demo never reaches beyond the loopback address it was given.
pub fn check_addresses(config: &Config, address: Ipv4Addr) -> Result<(), String> {
    let file = config.path.display();
    let expected = IpAddr::V4(address);
    let mut found: Vec<(String, IpAddr)> = Vec::new();
    for listen in &config.dns.listen {
        found.push((format!("dns.listen {listen}"), listen.ip()));
    }
    if let Some(listen) = config.admin.listen {
        found.push((format!("admin.listen {listen}"), listen.ip()));
    }
    for balancer in &config.balancers {
        found.push((
            format!("balancers.{}.listen {}", balancer.name, balancer.listen),
            balancer.listen.ip(),
        ));
        for set in &balancer.sets {
            for backend in &set.backends {
                found.push((
                    format!("balancers.{} backend {}", balancer.name, backend.addr),
                    backend.addr.ip(),
                ));
            }
        }
    }
    for region in &config.regions {
        for monitor in &region.monitors {
            let what = format!("regions.{} monitor {}", region.name, monitor.url);
            let host = match &monitor.url {
                ProbeUrl::Http(url) => url.host_str().map(str::to_string),
                ProbeUrl::Tcp { host, .. } => Some(host.clone()),
            };
            let ip = host
                .as_deref()
                .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
                .and_then(|host| host.parse::<IpAddr>().ok());
            match ip {
                Some(ip) => found.push((what, ip)),
                None => {
                    return Err(format!(
                        "{file}: {what}: the demo probes only IP addresses, and only {address}"
                    ));
                }
            }
        }
    }
    match found.into_iter().find(|(_, ip)| *ip != expected) {
        Some((what, ip)) => Err(format!(
            "{file}: {what}: {ip} is not the demo's address {address}; every listener, backend \
             and monitor of the demo must use it"
        )),
        None => Ok(()),
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
    /// Reads the demo's shape from `config`: everything must be on `address`
    /// ([`check_addresses`]), and each region's monitor must probe one of the
    /// `[balancers.*]` listeners.
    pub fn from_config(config: &Config, address: Ipv4Addr) -> Result<Topology, String> {
        check_addresses(config, address)?;
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

/// The error for a port the demo cannot listen on: which, for what, why (from the error's
/// kind) and what to do.
pub fn port_error(addr: SocketAddr, what: &str, err: &std::io::Error) -> String {
    let port = addr.port();
    let ip = addr.ip();
    let next = match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            Ipv4Addr::new(a, b, c, if d >= 254 { 2 } else { d + 1 })
        }
        IpAddr::V6(_) => Ipv4Addr::new(127, 0, 0, 2),
    };
    let head = format!("cannot listen on {addr} (port {port}, for {what}): {err}.");
    let advice = match err.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "Another program, or another `meridian demo`, uses port {port} on {ip}: stop it, \
             or run the demo on another loopback address: meridian demo --address {next}. \
             A program listening on 0.0.0.0:{port} (every address) holds the port on every \
             loopback address too, so only stopping it helps (`ss -ltunp` shows who listens \
             where)."
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{ip} is not an address of this machine. On Linux every address of 127.0.0.0/8 is \
             loopback; on other systems only 127.0.0.1 may be configured: use \
             meridian demo --address 127.0.0.1, or add {ip} to the loopback interface first"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "This user may not listen on port {port} of {ip} (a security policy, or a port \
             below 1024): run the demo as a user that may, or stop what restricts it"
        ),
        _ => format!(
            "Check that {ip} is a loopback address of this machine and that port {port} is \
             free, or run the demo on another loopback address: meridian demo --address {next}"
        ),
    };
    format!("{head}\n{advice}")
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
        assert!(text.contains("0.0.0.0:18053"), "{text}");
    }

    #[test]
    fn port_errors_say_why_by_kind() {
        let addr: SocketAddr = "127.5.6.7:15353".parse().unwrap();
        let text = port_error(
            addr,
            "DNS over UDP",
            &std::io::Error::from(std::io::ErrorKind::AddrNotAvailable),
        );
        assert!(
            text.contains("127.5.6.7 is not an address of this machine"),
            "{text}"
        );
        assert!(text.contains("--address 127.0.0.1"), "{text}");
        assert!(!text.contains("Another program"), "{text}");
        let text = port_error(
            addr,
            "DNS over UDP",
            &std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(text.contains("may not listen on port 15353"), "{text}");
        assert!(!text.contains("Another program"), "{text}");
        let text = port_error(addr, "DNS over UDP", &std::io::Error::other("odd"));
        assert!(text.contains("odd"), "{text}");
        assert!(text.contains("--address 127.5.6.8"), "{text}");
    }

    #[test]
    fn only_whole_default_addresses_move() {
        let to = Ipv4Addr::new(127, 9, 8, 7);
        assert_eq!(
            move_address("listen = \"127.0.0.1:53\"", to),
            "listen = \"127.9.8.7:53\""
        );
        assert_eq!(move_address("ns1 A 127.0.0.1\n", to), "ns1 A 127.9.8.7\n");
        assert_eq!(move_address("127.0.0.1", to), "127.9.8.7");
        assert_eq!(
            move_address("http://127.0.0.1:1/ 127.0.0.1", to),
            "http://127.9.8.7:1/ 127.9.8.7"
        );
        for unchanged in [
            "127.0.0.10:53",
            "127.0.0.100",
            "1127.0.0.1:53",
            "10.127.0.0.1",
            "127.0.0.1.5",
            "a127.0.0.1",
            "127.0.0.1x",
        ] {
            assert_eq!(move_address(unchanged, to), unchanged);
        }
        assert_eq!(move_address("127.0.0.1.", to), "127.9.8.7.");
    }

    #[test]
    fn an_address_other_than_the_demo_s_is_refused_after_loading() {
        let address = Ipv4Addr::new(127, 9, 8, 6);
        let config = CONFIG.replace(
            "{ addr = \"127.0.0.1:19112\", weight = 1 }",
            "{ addr = \"127.0.0.10:19112\", weight = 1 }",
        );
        assert_ne!(config, CONFIG);
        let files = DemoFiles::write_config(address, &config).unwrap();
        let loaded = crate::snapshot::load(&files.config).unwrap();
        let err = Topology::from_config(&loaded.config, address).unwrap_err();
        assert!(
            err.contains("balancers.eu-west backend 127.0.0.10:19112"),
            "{err}"
        );
        assert!(err.contains("not the demo's address 127.9.8.6"), "{err}");
        let config = CONFIG.replace(
            "url = \"http://127.0.0.1:18103/health\"",
            "url = \"http://localhost:18103/health\"",
        );
        assert_ne!(config, CONFIG);
        let files = DemoFiles::write_config(address, &config).unwrap();
        let loaded = crate::snapshot::load(&files.config).unwrap();
        let err = Topology::from_config(&loaded.config, address).unwrap_err();
        assert!(err.contains("regions.ap-southeast monitor"), "{err}");
    }

    #[test]
    fn the_temporary_directory_is_private_and_never_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = tempfile::tempdir().unwrap();
        let path = private_directory(parent.path()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{DIRECTORY_PREFIX}{}-", std::process::id()))
        );
        let other = private_directory(parent.path()).unwrap();
        assert_ne!(path, other);
        // A file of that name (or a link somewhere else) is not written through.
        let files = DemoFiles {
            config: path.join("x"),
            root: path.clone(),
        };
        std::os::unix::fs::symlink(parent.path().join("elsewhere"), path.join("planted")).unwrap();
        let err = files.put("planted", b"data").unwrap_err();
        assert!(err.contains("planted"), "{err}");
        assert!(!parent.path().join("elsewhere").exists());
        drop(files);
        assert!(!path.exists());
        let missing = parent.path().join("missing");
        let err = private_directory(&missing).unwrap_err();
        assert!(err.contains("TMPDIR"), "{err}");
    }
}
