//! What a web page of another site could make a browser send to an HTTP API on loopback, and
//! the rule that refuses it. The admin API and the demo's control API both apply it, each with
//! its own wording.

use std::net::IpAddr;

use axum::http::{HeaderMap, Method, header};

/// Why [`check`] refused a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// The request names a host other than a loopback one: a name of the page's own that
    /// resolves to loopback, as in DNS rebinding.
    BadHost(&'a str),
    /// A change (any method but `GET`, `HEAD` and `OPTIONS`) from a page whose `Origin` is not
    /// the API's own address.
    CrossOrigin(&'a str),
}

/// Refuses a request whose `Host` is not a loopback name (only when `loopback_only`), and a
/// change whose `Origin` is not the `Host` it was sent to. Requests without these headers
/// (curl, the CLI, tests) pass.
pub fn check<'a>(
    method: &Method,
    headers: &'a HeaderMap,
    loopback_only: bool,
) -> Result<(), Refusal<'a>> {
    let host = headers
        .get(header::HOST)
        .map(|value| value.to_str().unwrap_or(""));
    if loopback_only
        && let Some(host) = host
        && !loopback_host(host)
    {
        return Err(Refusal::BadHost(host));
    }
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let same = host.is_some_and(|host| {
        ["http://", "https://"].iter().any(|scheme| {
            origin
                .strip_prefix(scheme)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
        })
    });
    if safe || same {
        Ok(())
    } else {
        Err(Refusal::CrossOrigin(origin))
    }
}

/// Whether a `Host` value (with or without a port) names loopback: `localhost`, or an IPv4 or
/// IPv6 loopback address.
pub fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|addr| addr.is_loopback())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(host: Option<&'static str>, origin: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, HeaderValue::from_static(host));
        }
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_static(origin));
        }
        headers
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "127.0.0.1",
            "127.4.5.6:18054",
            "localhost",
            "LOCALHOST:1",
            "[::1]:18054",
            "[::1]",
            "localhost.",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in [
            "example.test",
            "10.0.0.1:18054",
            "[2001:db8::1]:1",
            "127.0.0.1.nip.io",
            "localhost.evil.example",
            "",
        ] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn foreign_hosts_are_refused_only_when_asked() {
        let rebound = headers(Some("evil.example:8053"), None);
        assert_eq!(
            check(&Method::GET, &rebound, true),
            Err(Refusal::BadHost("evil.example:8053"))
        );
        assert_eq!(check(&Method::GET, &rebound, false), Ok(()));
        assert_eq!(check(&Method::POST, &headers(None, None), true), Ok(()));
    }

    #[test]
    fn changes_need_the_same_origin() {
        let own = headers(Some("127.0.0.1:8053"), Some("http://127.0.0.1:8053"));
        assert_eq!(check(&Method::POST, &own, true), Ok(()));
        let foreign = headers(Some("127.0.0.1:8053"), Some("https://evil.example"));
        assert_eq!(
            check(&Method::PUT, &foreign, true),
            Err(Refusal::CrossOrigin("https://evil.example"))
        );
        // Reads from another origin are harmless without credentials the page can use.
        assert_eq!(check(&Method::GET, &foreign, true), Ok(()));
    }
}
