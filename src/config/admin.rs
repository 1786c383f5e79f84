//! `[admin]`: where the admin API listens, how it authenticates, and where operator state is
//! kept.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Source};

/// `[admin]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    /// `listen = "127.0.0.1:8053"`.
    pub listen: Option<Spanned<String>>,
    /// `token_file = "admin.token"`.
    pub token_file: Option<Spanned<String>>,
    /// `state_file = "state/admin.json"`.
    pub state_file: Option<Spanned<String>>,
}

/// The `[admin]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Where the admin HTTP API listens; absent: no admin API.
    pub listen: Option<SocketAddr>,
    /// File holding the bearer token every API request must carry.
    pub token_file: Option<PathBuf>,
    /// Where overrides and drills are saved, so they survive restarts.
    pub state_file: Option<PathBuf>,
}

/// Checks `[admin]`.
pub(super) fn admin(
    source: &Source<'_>,
    base: &Path,
    raw: Option<&RawAdmin>,
    health_state_file: Option<&Path>,
) -> Result<AdminConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(AdminConfig {
            listen: None,
            token_file: None,
            state_file: None,
        });
    };
    let listen = match &raw.listen {
        None => None,
        Some(spanned) => Some(spanned.as_ref().parse::<SocketAddr>().map_err(|_| {
            source.invalid(
                spanned,
                format_args!(
                    "admin.listen: {:?} is not an IP address with a port (write \"127.0.0.1:8053\")",
                    spanned.as_ref()
                ),
            )
        })?),
    };
    let token_file = raw.token_file.as_ref().map(|path| base.join(path.as_ref()));
    if let (Some(addr), None) = (listen, &token_file)
        && !addr.ip().is_loopback()
    {
        return Err(source.invalid(
            raw.listen.as_ref().expect("listen was given"),
            format_args!(
                "admin.listen = {addr} is not a loopback address, so admin.token_file is required: \
                 an admin API reachable from the network must not run without a token"
            ),
        ));
    }
    let state_file = raw.state_file.as_ref().map(|path| base.join(path.as_ref()));
    if let (Some(path), Some(health)) = (&state_file, health_state_file)
        && path == health
    {
        return Err(source.invalid(
            raw.state_file.as_ref().expect("state_file was given"),
            format_args!(
                "admin.state_file and health.state_file are both {}: give each its own file",
                path.display()
            ),
        ));
    }
    Ok(AdminConfig {
        listen,
        token_file,
        state_file,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    /// Parses a config with `admin` as its `[admin]` section.
    fn parse(admin: &str) -> Result<Config, crate::config::ConfigError> {
        Config::parse(
            &format!("[dns]\nlisten = [\"127.0.0.1:53\"]\nzones_dir = \"z\"\n[admin]\n{admin}"),
            Path::new("dir/meridian.toml"),
        )
    }

    #[test]
    fn admin_section_is_read() {
        let config = parse(
            "listen = \"0.0.0.0:8053\"\ntoken_file = \"admin.token\"\nstate_file = \"state/admin.json\"\n",
        )
        .unwrap();
        assert_eq!(config.admin.listen, Some("0.0.0.0:8053".parse().unwrap()));
        assert_eq!(
            config.admin.token_file.as_deref(),
            Some(Path::new("dir/admin.token"))
        );
        assert_eq!(
            config.admin.state_file.as_deref(),
            Some(Path::new("dir/state/admin.json"))
        );
        let loopback = parse("listen = \"127.0.0.1:8053\"\n").unwrap();
        assert_eq!(loopback.admin.token_file, None);
    }

    #[test]
    fn state_files_must_differ() {
        let err = Config::parse(
            "[dns]\nlisten = [\"127.0.0.1:53\"]\nzones_dir = \"z\"\n[health]\nstate_file = \"s.json\"\n\
             [admin]\nstate_file = \"s.json\"\n",
            Path::new("dir/meridian.toml"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "dir/meridian.toml:7: admin.state_file and health.state_file are both dir/s.json: give \
             each its own file"
        );
    }

    #[test]
    fn non_loopback_admin_needs_a_token() {
        let err = parse("listen = \"0.0.0.0:8053\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "dir/meridian.toml:5: admin.listen = 0.0.0.0:8053 is not a loopback address, so \
             admin.token_file is required: an admin API reachable from the network must not run \
             without a token"
        );
        let err = parse("listen = \"localhost:8053\"\n").unwrap_err();
        assert_eq!(err.line(), Some(5));
        let err = parse("listne = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `listne`"), "{err}");
    }
}
