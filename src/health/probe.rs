//! One health probe of a region's load balancer: an HTTP or HTTPS `GET`, or a TCP connect,
//! bounded by the monitor's timeout, with any failure mapped to a [`Failure`] an operator can act
//! on.
//!
//! A [`Prober`] is built once per monitor config: [`Prober::new`] reads the CA file, builds the
//! TLS config and, when the URL's host is an IP address, the HTTP client. [`Prober::probe`] then
//! runs one probe every interval. Every probe opens a fresh connection (no idle pooling), so a
//! dead server is noticed on the next probe. A URL with a host name is resolved again on every
//! probe, so a DNS change is followed and a resolution failure is its own reason.
//!
//! TLS is rustls with the `ring` provider, configured here and handed to reqwest; nothing relies
//! on a process-wide default provider.

use std::error::Error as StdError;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use reqwest::Url;
use reqwest::header::{HOST, HeaderValue};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::net::TcpStream;

use super::{Capacity, Failure, Pass, ProbeReport};
use crate::config::{MonitorConfig, ProbeUrl, StatusRange};

/// The User-Agent probes send, so a load balancer's logs show who is asking.
pub const USER_AGENT: &str = concat!("Meridian/", env!("CARGO_PKG_VERSION"), " (health check)");

/// Most body bytes read when looking for `expect_body`: a health page is small, and a probe must
/// not download a large page every second because of a misconfigured URL.
const BODY_LIMIT: usize = 64 * 1024;

/// Statuses that pass when the monitor lists none: any 2xx.
const DEFAULT_EXPECT_STATUS: StatusRange = StatusRange {
    low: 200,
    high: 299,
};

/// Where Unix systems keep their CA bundle, tried in order when neither `ca_file` nor
/// `SSL_CERT_FILE` is set (the list OpenSSL's probe and Go's `crypto/x509` use).
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A ready-to-run probe for one monitor; built once per monitor config, reused every interval.
#[derive(Debug)]
pub struct Prober {
    /// Longest a probe may take, from start to verdict.
    timeout: Duration,
    /// What is probed, and how.
    target: Target,
}

/// Why a probe could not be set up (bad CA file, ...). Display: one line saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum ProbeSetupError {
    /// The CA file (or `SSL_CERT_FILE`) could not be read.
    #[error("{}: cannot read CA file: {source}", path.display())]
    CaFileRead {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },
    /// The CA file holds no PEM certificate.
    #[error("{}: no PEM certificate in CA file", path.display())]
    CaFileEmpty {
        /// The file.
        path: PathBuf,
    },
    /// The CA file holds a malformed PEM section or a certificate rustls rejects.
    #[error("{}: invalid CA file: {detail}", path.display())]
    CaFileInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// An `https://` monitor has no `ca_file` and no system CA bundle was found.
    #[error(
        "no system CA certificates found (looked for {}); set ca_file on the monitor or \
         SSL_CERT_FILE",
        SYSTEM_CA_FILES.join(", ")
    )]
    NoSystemRoots,
    /// The URL or the `host` cannot be probed as given.
    #[error("{url}: {reason}")]
    Url {
        /// The monitor's URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS: {0}")]
    Tls(#[source] rustls::Error),
    /// reqwest refused the client configuration.
    #[error("{url}: cannot build the HTTP client: {source}")]
    Client {
        /// The monitor's URL.
        url: String,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
}

impl Prober {
    /// Prepares the probe described by `config`: reads the CA file and builds the TLS config.
    pub fn new(config: &MonitorConfig) -> Result<Prober, ProbeSetupError> {
        let target = match &config.url {
            ProbeUrl::Http(url) => Target::Http(Box::new(HttpProbe::new(url, config)?)),
            ProbeUrl::Tcp { host, port } => Target::Tcp {
                host: host.clone(),
                port: *port,
            },
        };
        Ok(Prober {
            timeout: config.timeout,
            target,
        })
    }

    /// Runs one probe; never panics, never takes longer than config.timeout (+ a few ms).
    pub async fn probe(&self) -> ProbeReport {
        let at = SystemTime::now();
        let start = Instant::now();
        let outcome = match &self.target {
            Target::Http(http) => tokio::time::timeout(self.timeout, http.run()).await,
            Target::Tcp { host, port } => {
                tokio::time::timeout(self.timeout, probe_tcp(host, *port)).await
            }
        };
        ProbeReport {
            at,
            latency: start.elapsed(),
            result: outcome.unwrap_or(Err(Failure::Timeout)),
        }
    }
}

/// What a [`Prober`] probes.
#[derive(Debug)]
enum Target {
    /// An HTTP or HTTPS `GET` (boxed: it is large, and a `Prober` is built once).
    Http(Box<HttpProbe>),
    /// A TCP connect to `host:port`.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// Everything an HTTP or HTTPS probe needs, prepared once.
#[derive(Debug)]
struct HttpProbe {
    /// The URL requested: the monitor's URL, with its host replaced by the monitor's `host`
    /// when that is set, so reqwest sends it as SNI and verifies the certificate against it.
    request_url: Url,
    /// The `Host` header, when the monitor sets `host`.
    host_header: Option<HeaderValue>,
    /// Statuses that pass; never empty.
    expect_status: Vec<StatusRange>,
    /// Bytes the body must contain, when the monitor sets `expect_body`.
    expect_body: Option<Vec<u8>>,
    /// Read `capacity` from the JSON body (`capacity_from = "pool"`).
    capacity_from_pool: bool,
    /// How the probe reaches the server.
    connect: Connect,
}

/// How an HTTP probe finds the address it connects to.
#[derive(Debug)]
enum Connect {
    /// The URL's host is an IP address: one client, built once, always connects there.
    Fixed(reqwest::Client),
    /// The URL's host is a name, resolved on every probe; the client is rebuilt when the
    /// addresses change.
    Resolve {
        /// The URL's host name.
        name: String,
        /// The URL's port (explicit or the scheme's default).
        port: u16,
        /// The host of `request_url`, which reqwest looks up in its resolve override.
        override_name: String,
        /// The TLS config every client is built with (shared: it is large).
        tls: Arc<ClientConfig>,
        /// The client for the addresses the name last resolved to.
        cached: Mutex<Option<(Vec<SocketAddr>, reqwest::Client)>>,
    },
}

impl HttpProbe {
    /// Checks the URL and `host`, builds the TLS config and, for an IP URL, the client.
    fn new(url: &Url, config: &MonitorConfig) -> Result<HttpProbe, ProbeSetupError> {
        let url_error = |reason: &str| ProbeSetupError::Url {
            url: url.to_string(),
            reason: reason.to_owned(),
        };
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(url_error("only http and https URLs can be probed")),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| url_error("URL has no port"))?;
        let url_host = url.host_str().ok_or_else(|| url_error("URL has no host"))?;
        // An IPv6 host keeps its brackets in the URL.
        let url_host = url_host.trim_start_matches('[').trim_end_matches(']');
        let url_ip = url_host.parse::<IpAddr>().ok();

        // With `host` set to a name, request that name and resolve it to the URL's address
        // ourselves: reqwest then sends it as SNI, checks the certificate against it and puts
        // it in `Host`. A `host` that is an IP address cannot be SNI; it only sets the header.
        let mut request_url = url.clone();
        let mut host_header = None;
        if let Some(host) = &config.host {
            host_header = Some(
                HeaderValue::from_str(host)
                    .map_err(|_| url_error("host is not a valid Host header"))?,
            );
            if host.parse::<IpAddr>().is_err() {
                request_url
                    .set_host(Some(host))
                    .map_err(|_| url_error("host is not a valid host name"))?;
            }
        }
        let override_name = request_url
            .host_str()
            .ok_or_else(|| url_error("URL has no host"))?
            .to_owned();

        let tls = tls_config(config, https)?;
        let connect = match url_ip {
            Some(ip) => {
                let addrs = [SocketAddr::new(ip, port)];
                let resolve = (override_name.parse::<IpAddr>().is_err())
                    .then_some((override_name.as_str(), &addrs[..]));
                let client =
                    build_client(&tls, resolve).map_err(|source| ProbeSetupError::Client {
                        url: url.to_string(),
                        source,
                    })?;
                Connect::Fixed(client)
            }
            None => {
                // Build one client now so a configuration reqwest rejects fails at set-up,
                // not on every probe.
                build_client(&tls, None).map_err(|source| ProbeSetupError::Client {
                    url: url.to_string(),
                    source,
                })?;
                Connect::Resolve {
                    name: url_host.to_owned(),
                    port,
                    override_name,
                    tls: Arc::new(tls),
                    cached: Mutex::new(None),
                }
            }
        };

        let expect_status = if config.expect_status.is_empty() {
            vec![DEFAULT_EXPECT_STATUS]
        } else {
            config.expect_status.clone()
        };
        Ok(HttpProbe {
            request_url,
            host_header,
            expect_status,
            expect_body: config
                .expect_body
                .as_ref()
                .map(|text| text.as_bytes().to_vec()),
            capacity_from_pool: config.capacity_from_pool,
            connect,
        })
    }

    /// Runs the request and judges the status and body; the caller bounds the time.
    async fn run(&self) -> Result<Pass, Failure> {
        let client = self.client().await?;
        let mut request = client.get(self.request_url.clone());
        if let Some(host) = &self.host_header {
            request = request.header(HOST, host.clone());
        }
        let mut response = request.send().await.map_err(|error| classify(&error))?;
        let status = response.status().as_u16();
        if !self
            .expect_status
            .iter()
            .any(|range| range.contains(status))
        {
            return Err(Failure::Status(status));
        }
        if self.capacity_from_pool {
            let body = read_body(&mut response).await?;
            if let Some(needle) = &self.expect_body
                && !body
                    .windows(needle.len().max(1))
                    .any(|window| window == needle)
            {
                return Err(Failure::BodyMismatch);
            }
            return Ok(Pass {
                status: Some(status),
                capacity: Some(pool_capacity(&body)?),
                requests: pool_requests(&body),
            });
        }
        if let Some(needle) = &self.expect_body
            && !body_contains(&mut response, needle).await?
        {
            return Err(Failure::BodyMismatch);
        }
        Ok(Pass {
            status: Some(status),
            capacity: None,
            requests: None,
        })
    }

    /// The client for this probe: the fixed one, or one for the name's current addresses.
    async fn client(&self) -> Result<reqwest::Client, Failure> {
        let (name, port, override_name, tls, cached) = match &self.connect {
            Connect::Fixed(client) => return Ok(client.clone()),
            Connect::Resolve {
                name,
                port,
                override_name,
                tls,
                cached,
            } => (name, *port, override_name, tls, cached),
        };
        let addrs = resolve(name, port).await?;
        // The guard never lives across an await, so the probe future stays `Send`.
        let mut cached = cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached_addrs, client)) = cached.as_ref()
            && *cached_addrs == addrs
        {
            return Ok(client.clone());
        }
        let client = build_client(tls, Some((override_name, &addrs)))
            .map_err(|error| Failure::Other(format!("cannot build the HTTP client: {error}")))?;
        *cached = Some((addrs, client.clone()));
        Ok(client)
    }
}

/// Builds a reqwest client that sends [`USER_AGENT`], follows no redirect, uses no proxy, keeps
/// no idle connection, and resolves `resolve.0` to `resolve.1` when given.
fn build_client(
    tls: &ClientConfig,
    resolve: Option<(&str, &[SocketAddr])>,
) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .no_hickory_dns()
        .http1_only()
        .pool_max_idle_per_host(0);
    if let Some((name, addrs)) = resolve {
        builder = builder.resolve_to_addrs(name, addrs);
    }
    builder.build()
}

/// Reads the body, at most [`BODY_LIMIT`] bytes.
async fn read_body(response: &mut reqwest::Response) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        let Some(chunk) = response.chunk().await.map_err(|error| classify(&error))? else {
            break;
        };
        let take = chunk.len().min(BODY_LIMIT - body.len());
        body.extend_from_slice(&chunk[..take]);
    }
    Ok(body)
}

/// The `capacity` a pool's health body reports: `{"capacity": 0.5, ...}`.
fn pool_capacity(body: &[u8]) -> Result<Capacity, Failure> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        Failure::Other("capacity_from = \"pool\": the body is not JSON".to_string())
    })?;
    value
        .get("capacity")
        .and_then(serde_json::Value::as_f64)
        .and_then(Capacity::new)
        .ok_or_else(|| {
            Failure::Other(
                "capacity_from = \"pool\": the body has no numeric \"capacity\"".to_string(),
            )
        })
}

/// The cumulative `requests` a pool's health body reports, if it does.
fn pool_requests(body: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()?
        .get("requests")?
        .as_u64()
}

/// Reads the body, at most [`BODY_LIMIT`] bytes, until it contains `needle`; `Ok(false)` when
/// the body (or the part read) does not.
async fn body_contains(response: &mut reqwest::Response, needle: &[u8]) -> Result<bool, Failure> {
    if needle.is_empty() {
        return Ok(true);
    }
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        let Some(chunk) = response.chunk().await.map_err(|error| classify(&error))? else {
            break;
        };
        // Only the new bytes, and the tail a match could straddle, need searching.
        let search_from = body.len().saturating_sub(needle.len() - 1);
        let take = chunk.len().min(BODY_LIMIT - body.len());
        body.extend_from_slice(&chunk[..take]);
        if body[search_from..]
            .windows(needle.len())
            .any(|window| window == needle)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Passes when a TCP connection to one of `host`'s addresses opens; the caller bounds the time.
async fn probe_tcp(host: &str, port: u16) -> Result<Pass, Failure> {
    let mut last = Failure::Resolve("no addresses".to_owned());
    for addr in resolve(host, port).await? {
        match TcpStream::connect(addr).await {
            Ok(_) => {
                return Ok(Pass {
                    status: None,
                    capacity: None,
                    requests: None,
                });
            }
            Err(error) => last = io_failure(&error),
        }
    }
    Err(last)
}

/// Resolves `host` (a name or an IP address) with the system resolver.
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Failure> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|error| Failure::Resolve(format!("{host}: {error}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Failure::Resolve(format!("{host}: no addresses")));
    }
    Ok(addrs)
}

/// Maps a reqwest error to the reason an operator needs, by walking its source chain (reqwest
/// wraps hyper-util, which wraps hyper, rustls or `io::Error`).
fn classify(error: &reqwest::Error) -> Failure {
    if error.is_timeout() {
        return Failure::Timeout;
    }
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    let mut innermost: &(dyn StdError + 'static) = error;
    while let Some(cause) = current {
        innermost = cause;
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Failure::Tls(tls_detail(tls));
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            match io.get_ref() {
                // `io::Error::source` skips the wrapped error (hyper-rustls wraps rustls's
                // error in an `io::Error`, wrapped in another), so step into it by hand.
                Some(inner) if !known_io_kind(io.kind()) => {
                    current = Some(inner);
                    continue;
                }
                _ => return io_failure(io),
            }
        }
        if let Some(hyper) = cause.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled() {
                return Failure::Closed;
            }
            if hyper.is_timeout() {
                return Failure::Timeout;
            }
            if hyper.is_parse() || hyper.is_parse_status() {
                return Failure::Other(format!("invalid HTTP response: {hyper}"));
            }
        }
        current = cause.source();
    }
    Failure::Other(innermost.to_string())
}

/// Whether [`io_failure`] has a reason of its own for `kind`.
fn known_io_kind(kind: io::ErrorKind) -> bool {
    use io::ErrorKind::*;
    matches!(
        kind,
        ConnectionRefused
            | ConnectionReset
            | ConnectionAborted
            | UnexpectedEof
            | BrokenPipe
            | TimedOut
            | NetworkUnreachable
            | HostUnreachable
            | AddrNotAvailable
    )
}

/// Maps an I/O error from connecting, writing or reading to a reason.
fn io_failure(error: &io::Error) -> Failure {
    use io::ErrorKind::*;
    match error.kind() {
        ConnectionRefused => Failure::Refused,
        ConnectionReset | ConnectionAborted | UnexpectedEof | BrokenPipe => Failure::Closed,
        TimedOut => Failure::Timeout,
        NetworkUnreachable => Failure::Other("network unreachable".to_owned()),
        HostUnreachable => Failure::Other("host unreachable".to_owned()),
        AddrNotAvailable => Failure::Other("address not available".to_owned()),
        _ => Failure::Other(error.to_string()),
    }
}

/// A short, operator-facing description of a TLS failure.
fn tls_detail(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer => {
                "certificate not trusted (unknown issuer; check ca_file)".to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet".to_owned()
            }
            CertificateError::NotValidForName => "certificate not valid for the host".to_owned(),
            CertificateError::BadSignature => {
                "certificate signature does not verify (not issued by a trusted CA?)".to_owned()
            }
            other => other.to_string(),
        },
        rustls::Error::AlertReceived(alert) => format!("server sent alert {alert:?}"),
        rustls::Error::InvalidMessage(_) => "invalid TLS message (is the server TLS?)".to_owned(),
        other => other.to_string(),
    }
}

/// The client TLS config: ring provider, the monitor's CA file or the system roots (or no
/// verification when `insecure`), HTTP/1.1 over ALPN.
fn tls_config(config: &MonitorConfig, https: bool) -> Result<ClientConfig, ProbeSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(ProbeSetupError::Tls)?;
    let mut tls = if config.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate { provider }))
            .with_no_client_auth()
    } else {
        let roots = match &config.ca_file {
            Some(path) => load_ca_file(path)?,
            // A plain-HTTP monitor never verifies a certificate; no need for the system roots.
            None if !https => RootCertStore::empty(),
            None => match std::env::var_os("SSL_CERT_FILE") {
                Some(path) => load_ca_file(Path::new(&path))?,
                None => load_system_roots(SYSTEM_CA_FILES)?,
            },
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Reads a PEM file of one or more CA certificates into a root store.
fn load_ca_file(path: &Path) -> Result<RootCertStore, ProbeSetupError> {
    let pem = std::fs::read(path).map_err(|source| ProbeSetupError::CaFileRead {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |detail: String| ProbeSetupError::CaFileInvalid {
        path: path.to_owned(),
        detail,
    };
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|error| invalid(error.to_string()))?;
        roots
            .add(certificate)
            .map_err(|error| invalid(error.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ProbeSetupError::CaFileEmpty {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// Reads the first of `candidates` that exists; unparsable certificates in a system bundle are
/// skipped, as other TLS clients do.
fn load_system_roots(candidates: &[&str]) -> Result<RootCertStore, ProbeSetupError> {
    for candidate in candidates {
        let Ok(pem) = std::fs::read(candidate) else {
            continue;
        };
        let mut roots = RootCertStore::empty();
        roots
            .add_parsable_certificates(CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok));
        if !roots.is_empty() {
            return Ok(roots);
        }
    }
    Err(ProbeSetupError::NoSystemRoots)
}

/// The `insecure = true` verifier: accepts any certificate for any name, but still checks that
/// the server holds the key of the certificate it presented (handshake signatures).
#[derive(Debug)]
struct AcceptAnyCertificate {
    /// Supplies the signature algorithms.
    provider: Arc<CryptoProvider>,
}

impl AcceptAnyCertificate {
    /// The provider's signature verification algorithms.
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pool_capacity_is_read_from_the_health_json() {
        let capacity = |body: &str| pool_capacity(body.as_bytes()).map(Capacity::get);
        assert_eq!(
            capacity(r#"{"healthy":2,"total":4,"capacity":0.5}"#),
            Ok(0.5)
        );
        assert_eq!(
            pool_requests(br#"{"capacity":0.5,"requests":1234}"#),
            Some(1234)
        );
        assert_eq!(pool_requests(br#"{"capacity":0.5}"#), None);
        assert_eq!(capacity(r#"{"capacity":7}"#), Ok(1.0), "clamped");
        assert!(matches!(capacity("ok"), Err(Failure::Other(_))));
        assert!(matches!(
            capacity(r#"{"healthy":2}"#),
            Err(Failure::Other(_))
        ));
    }

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;
    use crate::config::{MonitorConfig, ProbeUrl, StatusRange};

    /// The timeout of most tests: long enough for a loaded CI machine to answer on loopback.
    const TIMEOUT: Duration = Duration::from_millis(500);

    /// What a test server does on each connection.
    #[derive(Debug, Clone, Copy)]
    enum Behaviour {
        /// Reads the request head, writes these bytes, closes.
        Reply(&'static str),
        /// Reads the request head, then keeps the connection open without a word.
        Hang,
        /// Reads the request head, then closes without answering.
        Close,
        /// Writes these bytes as soon as it accepts, without reading, then keeps the
        /// connection open (closing with unread input would reset it).
        Greet(&'static str),
    }

    /// A running test server on 127.0.0.1.
    struct TestServer {
        /// Where it listens.
        addr: SocketAddr,
        /// Each request head received, in order.
        heads: mpsc::UnboundedReceiver<String>,
        /// The SNI of each TLS connection (HTTPS servers only).
        snis: mpsc::UnboundedReceiver<Option<String>>,
        /// The accept loop; aborting it closes the listener.
        accept: tokio::task::JoinHandle<()>,
    }

    impl TestServer {
        /// `http://127.0.0.1:PORT/health` (or `https://`).
        fn url(&self, scheme: &str) -> String {
            format!("{scheme}://{}/health", self.addr)
        }

        /// The next request head the server saw.
        async fn head(&mut self) -> String {
            self.heads.recv().await.expect("the server saw a request")
        }

        /// Stops accepting and closes the listener.
        async fn stop(self) {
            self.accept.abort();
            let _ = self.accept.await;
        }
    }

    /// Starts a plain HTTP server with `behaviour`.
    async fn http_server(behaviour: Behaviour) -> TestServer {
        start_server(behaviour, None).await
    }

    /// Starts an HTTPS server with `behaviour`, presenting `certificate`.
    async fn https_server(behaviour: Behaviour, certificate: &TestCertificate) -> TestServer {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.der.clone()], certificate.key())
        .unwrap();
        start_server(
            behaviour,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    /// Binds 127.0.0.1:0 and serves every connection with `behaviour`, over TLS when given.
    async fn start_server(
        behaviour: Behaviour,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (head_tx, heads) = mpsc::unbounded_channel();
        let (sni_tx, snis) = mpsc::unbounded_channel();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let head_tx = head_tx.clone();
                let sni_tx = sni_tx.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve(stream, behaviour, head_tx).await,
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let sni = stream.get_ref().1.server_name().map(str::to_owned);
                            let _ = sni_tx.send(sni);
                            serve(stream, behaviour, head_tx).await;
                        }
                    }
                });
            }
        });
        TestServer {
            addr,
            heads,
            snis,
            accept,
        }
    }

    /// Reads one request head, reports it, and acts out `behaviour`.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        mut stream: S,
        behaviour: Behaviour,
        heads: mpsc::UnboundedSender<String>,
    ) {
        if let Behaviour::Greet(greeting) = behaviour {
            let _ = stream.write_all(greeting.as_bytes()).await;
            return std::future::pending().await;
        }
        let mut head = Vec::new();
        let mut buffer = [0; 1024];
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
        }
        let _ = heads.send(String::from_utf8_lossy(&head).into_owned());
        match behaviour {
            Behaviour::Reply(reply) => {
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
            Behaviour::Hang => std::future::pending::<()>().await,
            Behaviour::Close | Behaviour::Greet(_) => {}
        }
    }

    /// A self-signed certificate and its key, with the certificate also in a PEM file.
    struct TestCertificate {
        /// The certificate.
        der: CertificateDer<'static>,
        /// The PKCS#8 private key.
        key: Vec<u8>,
        /// Holds `ca_file`.
        _dir: tempfile::TempDir,
        /// The certificate as PEM.
        ca_file: PathBuf,
    }

    impl TestCertificate {
        /// A fresh self-signed certificate for `name`.
        fn new(name: &str) -> TestCertificate {
            let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let ca_file = dir.path().join("ca.pem");
            std::fs::write(&ca_file, generated.cert.pem()).unwrap();
            TestCertificate {
                der: generated.cert.der().clone(),
                key: generated.signing_key.serialize_der(),
                _dir: dir,
                ca_file,
            }
        }

        /// The private key, as rustls takes it.
        fn key(&self) -> PrivateKeyDer<'static> {
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
        }
    }

    /// A monitor of `url` with the defaults the tests start from.
    fn monitor(url: &str) -> MonitorConfig {
        MonitorConfig {
            url: ProbeUrl::Http(url.parse().unwrap()),
            host: None,
            interval: Duration::from_secs(1),
            timeout: TIMEOUT,
            rise: 1,
            fall: 1,
            expect_status: Vec::new(),
            expect_body: None,
            ca_file: None,
            insecure: false,
            capacity_from_pool: false,
        }
    }

    /// A TCP monitor of `host:port`.
    fn tcp_monitor(host: &str, port: u16) -> MonitorConfig {
        MonitorConfig {
            url: ProbeUrl::Tcp {
                host: host.to_owned(),
                port,
            },
            ..monitor("http://127.0.0.1/")
        }
    }

    /// Runs one probe of `config` and checks its result against `expect`.
    async fn check(config: &MonitorConfig, expect: Result<Pass, Failure>) -> ProbeReport {
        let report = Prober::new(config).unwrap().probe().await;
        assert_eq!(report.result, expect, "{report}");
        report
    }

    /// A port nothing listens on: bound, then released.
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    /// A 200 with a body.
    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

    /// `Ok(Pass { status: Some(status) })`.
    fn passed(status: u16) -> Result<Pass, Failure> {
        Ok(Pass {
            capacity: None,
            requests: None,
            status: Some(status),
        })
    }

    /// A 200 passes, with its status, well within the timeout.
    #[tokio::test]
    async fn status_200_passes() {
        let server = http_server(Behaviour::Reply(OK)).await;
        let report = check(&monitor(&server.url("http")), passed(200)).await;
        assert!(report.latency < TIMEOUT);
        assert!(report.at <= SystemTime::now());
    }

    /// A status outside the default 2xx fails with that status.
    #[tokio::test]
    async fn status_503_fails() {
        let reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        let server = http_server(Behaviour::Reply(reply)).await;
        check(&monitor(&server.url("http")), Err(Failure::Status(503))).await;
    }

    /// A 301 is judged as a status, never followed; one request per probe.
    #[tokio::test]
    async fn redirect_is_a_status_not_followed() {
        // The redirect target is a refused port: following it would fail differently.
        let reply = "HTTP/1.1 301 Moved Permanently\r\nLocation: http://127.0.0.1:1/\r\n\
                     Content-Length: 0\r\n\r\n";
        let mut server = http_server(Behaviour::Reply(reply)).await;
        let mut config = monitor(&server.url("http"));
        check(&config, Err(Failure::Status(301))).await;
        config.expect_status = vec![StatusRange {
            low: 301,
            high: 301,
        }];
        check(&config, passed(301)).await;
        server.head().await;
        server.head().await;
        assert!(server.heads.try_recv().is_err(), "one request per probe");
    }

    /// Any of several `expect_status` ranges passes.
    #[tokio::test]
    async fn expect_status_ranges() {
        let reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let server = http_server(Behaviour::Reply(reply)).await;
        let mut config = monitor(&server.url("http"));
        config.expect_status = vec![
            StatusRange {
                low: 200,
                high: 299,
            },
            StatusRange {
                low: 400,
                high: 499,
            },
        ];
        check(&config, passed(404)).await;
    }

    /// A body containing `expect_body` passes.
    #[tokio::test]
    async fn expected_body_passes() {
        let reply = "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\nstatus: healthy";
        let server = http_server(Behaviour::Reply(reply)).await;
        let mut config = monitor(&server.url("http"));
        config.expect_body = Some("healthy".to_owned());
        check(&config, passed(200)).await;
    }

    /// A body without `expect_body` fails as a body mismatch.
    #[tokio::test]
    async fn body_without_the_text_fails() {
        let reply = "HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\nstatus: unhealthy";
        let server = http_server(Behaviour::Reply(reply)).await;
        let mut config = monitor(&server.url("http"));
        config.expect_body = Some("status: healthy".to_owned());
        check(&config, Err(Failure::BodyMismatch)).await;
    }

    /// A body delimited by the connection's end is read to the text.
    #[tokio::test]
    async fn body_is_read_until_end_of_connection() {
        // No Content-Length: the body ends when the server closes.
        let reply = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nfirst part, then healthy";
        let server = http_server(Behaviour::Reply(reply)).await;
        let mut config = monitor(&server.url("http"));
        config.expect_body = Some("healthy".to_owned());
        check(&config, passed(200)).await;
    }

    /// A server that never answers times out, and the probe ends on time.
    #[tokio::test]
    async fn hanging_server_times_out_on_time() {
        let server = http_server(Behaviour::Hang).await;
        let mut config = monitor(&server.url("http"));
        config.timeout = Duration::from_millis(200);
        let start = Instant::now();
        let report = check(&config, Err(Failure::Timeout)).await;
        let slack = Duration::from_millis(150);
        assert!(report.latency >= config.timeout);
        assert!(report.latency < config.timeout + slack, "{report}");
        assert!(start.elapsed() < config.timeout + slack);
    }

    /// A server that closes without answering gives `Closed`.
    #[tokio::test]
    async fn close_without_answer_is_closed() {
        let server = http_server(Behaviour::Close).await;
        check(&monitor(&server.url("http")), Err(Failure::Closed)).await;
    }

    /// A server that closes before the announced body length gives `Closed`.
    #[tokio::test]
    async fn close_in_the_middle_of_the_body_is_closed() {
        let reply = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nstatus: hea";
        let server = http_server(Behaviour::Reply(reply)).await;
        let mut config = monitor(&server.url("http"));
        config.expect_body = Some("healthy".to_owned());
        check(&config, Err(Failure::Closed)).await;
    }

    /// A reply that is not HTTP is reported as invalid HTTP.
    #[tokio::test]
    async fn garbage_reply_is_invalid_http() {
        let server = http_server(Behaviour::Reply("SSH-2.0-OpenSSH_9.6\r\n")).await;
        let report = Prober::new(&monitor(&server.url("http")))
            .unwrap()
            .probe()
            .await;
        match report.result {
            Err(Failure::Other(detail)) => {
                assert!(detail.starts_with("invalid HTTP response: "), "{detail}");
            }
            other => panic!("expected invalid HTTP, got {other:?}"),
        }
    }

    /// A port nothing listens on gives `Refused`.
    #[tokio::test]
    async fn closed_port_is_refused() {
        let port = closed_port().await;
        let url = format!("http://127.0.0.1:{port}/health");
        check(&monitor(&url), Err(Failure::Refused)).await;
    }

    /// A server that dies between probes fails the next probe: nothing pooled.
    #[tokio::test]
    async fn dead_server_is_noticed_by_the_same_prober() {
        let server = http_server(Behaviour::Reply(OK)).await;
        let prober = Prober::new(&monitor(&server.url("http"))).unwrap();
        assert_eq!(prober.probe().await.result, passed(200));
        server.stop().await;
        assert_eq!(prober.probe().await.result, Err(Failure::Refused));
    }

    /// `host` is sent as the `Host` header to the URL's own address.
    #[tokio::test]
    async fn sends_host_header_to_the_url_address() {
        let mut server = http_server(Behaviour::Reply(OK)).await;
        let mut config = monitor(&server.url("http"));
        config.host = Some("lb.example".to_owned());
        check(&config, passed(200)).await;
        let head = server.head().await.to_ascii_lowercase();
        assert!(head.starts_with("get /health http/1.1\r\n"), "{head}");
        assert!(head.contains("\r\nhost: lb.example\r\n"), "{head}");
    }

    /// Without `host`, the URL's authority is the `Host` header.
    #[tokio::test]
    async fn without_host_the_url_authority_is_sent() {
        let mut server = http_server(Behaviour::Reply(OK)).await;
        check(&monitor(&server.url("http")), passed(200)).await;
        let head = server.head().await.to_ascii_lowercase();
        assert!(
            head.contains(&format!("\r\nhost: {}\r\n", server.addr)),
            "{head}"
        );
    }

    /// Probes identify themselves with [`USER_AGENT`].
    #[tokio::test]
    async fn sends_user_agent() {
        let mut server = http_server(Behaviour::Reply(OK)).await;
        check(&monitor(&server.url("http")), passed(200)).await;
        let head = server.head().await;
        assert!(USER_AGENT.starts_with("Meridian/") && USER_AGENT.ends_with(" (health check)"));
        let line = format!("\r\nuser-agent: {USER_AGENT}\r\n");
        assert!(
            head.to_ascii_lowercase()
                .contains(&line.to_ascii_lowercase()),
            "{head}"
        );
    }

    /// A URL with a host name is resolved and probed, again and again.
    #[tokio::test]
    async fn url_with_a_name_is_resolved_per_probe() {
        let mut server = http_server(Behaviour::Reply(OK)).await;
        let url = format!("http://localhost:{}/health", server.addr.port());
        let mut config = monitor(&url);
        config.host = Some("lb.example".to_owned());
        let prober = Prober::new(&config).unwrap();
        assert_eq!(prober.probe().await.result, passed(200));
        assert_eq!(prober.probe().await.result, passed(200));
        assert!(server.head().await.contains("host: lb.example\r\n"));
    }

    /// A TCP monitor passes when the port accepts connections.
    #[tokio::test]
    async fn tcp_connect_passes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        check(
            &tcp_monitor("127.0.0.1", port),
            Ok(Pass {
                status: None,
                capacity: None,
                requests: None,
            }),
        )
        .await;
    }

    /// A TCP monitor of a closed port gives `Refused`.
    #[tokio::test]
    async fn tcp_closed_port_is_refused() {
        let port = closed_port().await;
        check(&tcp_monitor("127.0.0.1", port), Err(Failure::Refused)).await;
    }

    /// HTTPS to an IP URL with `host` and `ca_file` passes, with `host` as SNI and `Host`.
    #[tokio::test]
    async fn https_with_ca_file_and_host_passes_and_sends_sni() {
        let certificate = TestCertificate::new("lb.test");
        let mut server = https_server(Behaviour::Reply(OK), &certificate).await;
        let mut config = monitor(&server.url("https"));
        config.host = Some("lb.test".to_owned());
        config.ca_file = Some(certificate.ca_file.clone());
        check(&config, passed(200)).await;
        assert_eq!(server.snis.recv().await, Some(Some("lb.test".to_owned())));
        assert!(server.head().await.contains("host: lb.test\r\n"));
    }

    /// A certificate not issued by the CA file fails TLS.
    #[tokio::test]
    async fn https_with_another_ca_fails_tls() {
        let certificate = TestCertificate::new("lb.test");
        let other = TestCertificate::new("lb.test");
        let server = https_server(Behaviour::Reply(OK), &certificate).await;
        let mut config = monitor(&server.url("https"));
        config.host = Some("lb.test".to_owned());
        config.ca_file = Some(other.ca_file.clone());
        let report = Prober::new(&config).unwrap().probe().await;
        match report.result {
            // Both certificates have rcgen's default subject, so rustls finds the other one as
            // the issuer and then rejects the signature.
            Err(Failure::Tls(detail)) => assert!(detail.starts_with("certificate "), "{detail}"),
            other => panic!("expected a TLS failure, got {other:?}"),
        }
    }

    /// Without `ca_file`, the system roots reject a self-signed certificate.
    #[tokio::test]
    async fn https_with_system_roots_rejects_a_self_signed_certificate() {
        let certificate = TestCertificate::new("lb.test");
        let server = https_server(Behaviour::Reply(OK), &certificate).await;
        let mut config = monitor(&server.url("https"));
        config.host = Some("lb.test".to_owned());
        match Prober::new(&config) {
            Ok(prober) => {
                let report = prober.probe().await;
                assert!(matches!(report.result, Err(Failure::Tls(_))), "{report}");
            }
            // A machine without a CA bundle cannot run this probe at all.
            Err(error) => assert!(matches!(error, ProbeSetupError::NoSystemRoots), "{error}"),
        }
    }

    /// A certificate for another name than `host` fails TLS.
    #[tokio::test]
    async fn https_for_another_name_fails_tls() {
        let certificate = TestCertificate::new("lb.test");
        let server = https_server(Behaviour::Reply(OK), &certificate).await;
        let mut config = monitor(&server.url("https"));
        config.host = Some("other.test".to_owned());
        config.ca_file = Some(certificate.ca_file.clone());
        let report = Prober::new(&config).unwrap().probe().await;
        assert!(matches!(report.result, Err(Failure::Tls(_))), "{report}");
    }

    /// `insecure` accepts an untrusted certificate and still sends SNI.
    #[tokio::test]
    async fn https_insecure_passes_without_the_ca() {
        let certificate = TestCertificate::new("lb.test");
        let mut server = https_server(Behaviour::Reply(OK), &certificate).await;
        let mut config = monitor(&server.url("https"));
        config.host = Some("lb.test".to_owned());
        config.insecure = true;
        check(&config, passed(200)).await;
        assert_eq!(server.snis.recv().await, Some(Some("lb.test".to_owned())));
    }

    /// HTTPS to a plain HTTP server fails TLS.
    #[tokio::test]
    async fn https_to_a_plain_http_server_fails_tls() {
        let reply = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        let server = http_server(Behaviour::Greet(reply)).await;
        let mut config = monitor(&server.url("https"));
        config.insecure = true;
        let report = Prober::new(&config).unwrap().probe().await;
        assert!(matches!(report.result, Err(Failure::Tls(_))), "{report}");
    }

    /// A missing CA file is a one-line set-up error that starts with its path.
    #[test]
    fn missing_ca_file_is_a_setup_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.pem");
        let mut config = monitor("https://127.0.0.1/health");
        config.ca_file = Some(path.clone());
        let error = Prober::new(&config).unwrap_err();
        assert!(
            matches!(error, ProbeSetupError::CaFileRead { .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("{}: ", path.display())),
            "{message}"
        );
        assert!(!message.contains('\n'));
    }

    /// A CA file without a PEM certificate is a set-up error naming it.
    #[test]
    fn ca_file_without_certificate_is_a_setup_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let mut config = monitor("https://127.0.0.1/health");
        config.ca_file = Some(path.clone());
        let error = Prober::new(&config).unwrap_err();
        assert!(
            matches!(error, ProbeSetupError::CaFileEmpty { .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: ", path.display()))
        );
    }

    /// A CA file with a malformed certificate is a set-up error naming it.
    #[test]
    fn ca_file_with_a_broken_certificate_is_a_setup_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(&path, pem).unwrap();
        let mut config = monitor("https://127.0.0.1/health");
        config.ca_file = Some(path.clone());
        let error = Prober::new(&config).unwrap_err();
        assert!(
            matches!(error, ProbeSetupError::CaFileInvalid { .. }),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: ", path.display()))
        );
    }

    /// No system bundle among the candidates is a set-up error.
    #[test]
    fn no_system_bundle_is_a_setup_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let candidates = [missing.to_str().unwrap(), empty.to_str().unwrap()];
        let error = load_system_roots(&candidates).unwrap_err();
        assert!(matches!(error, ProbeSetupError::NoSystemRoots));
    }

    /// The first existing candidate bundle is the one loaded.
    #[test]
    fn system_bundle_is_the_first_candidate_with_certificates() {
        let certificate = TestCertificate::new("lb.test");
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let candidates = [
            missing.to_str().unwrap(),
            certificate.ca_file.to_str().unwrap(),
        ];
        assert_eq!(load_system_roots(&candidates).unwrap().len(), 1);
    }

    /// Plain HTTP sets up without roots; other schemes are refused at set-up.
    #[test]
    fn plain_http_needs_no_roots_and_unknown_schemes_are_refused() {
        assert!(Prober::new(&monitor("http://127.0.0.1/health")).is_ok());
        let error = Prober::new(&monitor("ftp://127.0.0.1/health")).unwrap_err();
        assert!(matches!(error, ProbeSetupError::Url { .. }), "{error}");
    }

    /// The probe future can be spawned on a multi-threaded runtime.
    #[test]
    fn probe_future_is_send() {
        /// Compiles only for `Send` values.
        fn assert_send<T: Send>(_: &T) {}
        let prober = Prober::new(&monitor("http://localhost/health")).unwrap();
        assert_send(&prober.probe());
    }
}
