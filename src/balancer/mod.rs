//! The embedded L7 balancer's balancing algorithms: which backend of a pool takes a request.
//!
//! Architecture invariant: everything under this module is pure. It does no I/O, reads no clock
//! (time arrives as an [`Instant`] in [`SelectInput::now`]), uses no global random source
//! (randomness arrives as a `&mut fastrand::Rng`), and [`Selector::select`] allocates nothing:
//! tables are built by [`Selector::new`] when the backend *set* changes, and reused while
//! backends flip between eligible and not.
//!
//! The proxy that runs these algorithms is the exception, kept in its own modules: [`pool`]
//! (backend state, sets, routes, active checks), [`proxy`] (one request, routed and forwarded),
//! [`downstream`] (HTTP/1.x client connections), [`upstream`] (HTTP/1.1 towards backends, without
//! I/O) and [`listener`] (accept loop, reload, drain, shutdown) do I/O and read the clock.
//!
//! # Use
//!
//! A pool's backends are numbered by their position in the `&[BackendSpec]` the selector is
//! built from; every per-backend slice below is indexed the same way, and [`Pick::backend`] is
//! such an index. Build a [`Selector`] at config load (its errors are configuration errors),
//! rebuild it when the backend list or a weight changes, and call [`Selector::select`] per
//! request. `None` means no backend is eligible: answer 503 without trying.
//!
//! # What each algorithm reads
//!
//! | algorithm | reads | state between picks |
//! |---|---|---|
//! | `round_robin` | `eligible` (ignores weights) | atomic cursor |
//! | `weighted_round_robin` | `eligible`, weights (nginx smooth WRR) | current weights, `Mutex` |
//! | `least_connections` | `eligible`, `outstanding`, weights | none |
//! | `least_request` | `eligible`, `outstanding`, weights (P2C) | none |
//! | `least_response_time` | `eligible`, `outstanding`, `latency`, `now`, weights (P2C) | none |
//! | `random` | `eligible`, weights | none |
//! | `ip_hash` | `eligible`, `client_ip`, weights | none |
//! | `ring_hash` | `eligible`, `hash_key`, weights, names | none |
//! | `maglev` | `eligible`, `hash_key`, weights, names | none |
//! | `cookie` | `cookie`, then whatever its fallback reads | the fallback's |
//!
//! All but the round robins use the `rng` (P2C draws, ties, and a random key for a request
//! without a `client_ip` or `hash_key`, which thus spreads like `random`).
//!
//! Under slow start the caller also passes the weights in effect ([`SelectInput::weights`]):
//! every weighted algorithm then uses them instead of the configured weights (`random` by an
//! O(n) walk, its table holding the configured ones), and `ip_hash`, `ring_hash` and `maglev`
//! keep their tables but let a ramping backend take only a growing fraction of its keys (see
//! [`slow_start`]). `round_robin` ignores weights and so the ramp.
//!
//! # Per-backend data the proxy keeps
//!
//! - **eligible** (`bool`): healthy (the health state machine's observation) *and* enabled
//!   (the operator's intent). Usually a boxed slice in the health snapshot the proxy already
//!   loads, passed as it is.
//! - **outstanding** (`u32`): requests sent to the backend and not yet finished (incremented
//!   before dispatch, decremented when the response ends or fails). Read by the three
//!   least-load algorithms; kept as an `AtomicU32` per backend and copied into a per-worker
//!   scratch slice before `select` (n relaxed loads), or kept in a small per-pool `Mutex`.
//! - **latency** ([`PeakEwma`]): fed with [`PeakEwma::observe`] each time a response's headers
//!   arrive (RTT = headers received minus request sent); read by `least_response_time` only.
//!   `observe` takes `&mut self`, so these live in the per-pool `Mutex` (or one per backend,
//!   copied out like the counts).
//!
//! Missing entries (a slice shorter than the pool) count as ineligible, 0 outstanding, and a
//! latency of [`PeakEwma::DEFAULT_RTT`]; entries past the pool's size are ignored.
//!
//! # Concurrency
//!
//! [`Selector`] is `Send + Sync` and `select` takes `&self`: the proxy keeps one selector per
//! pool in an `ArcSwap` and every worker picks through the same one. The round-robin cursor is
//! an `AtomicUsize` (lock-free). Smooth weighted round robin keeps its current weights behind a
//! `std::sync::Mutex`, held for one O(n) pass over `i64`s per pick: nginx's pick reads and
//! writes every current weight together, and the lock-free alternative (a precomputed cycle
//! and an atomic cursor) needs a cap on the sum of the weights and is no longer nginx's
//! sequence once a backend is ineligible. Every other algorithm is stateless or reads only
//! immutable tables. Rebuilding a selector resets its cursor and current weights, as an nginx
//! reload does.
//!
//! # Hashing
//!
//! Ring hash, Maglev, IP hash and cookie tokens hash with XXH64 (implemented in `hash`, checked
//! against the reference vectors) under fixed seeds, so a key maps to the same backend in every
//! process, on every platform, after every restart. `std`'s `RandomState` is never used.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Instant;

use rustc_hash::FxHashSet;

mod cookie;
pub mod downstream;
mod eligible;
mod hash;
mod ip_hash;
mod least_connections;
mod least_request;
mod least_response_time;
pub mod listener;
mod maglev;
pub mod pool;
pub mod proxy;
mod random;
mod ring_hash;
mod round_robin;
pub mod slow_start;
pub mod upstream;

pub use cookie::TOKEN_LEN as COOKIE_TOKEN_LEN;
pub use least_response_time::PeakEwma;
pub use maglev::DEFAULT_TABLE_SIZE as DEFAULT_MAGLEV_TABLE_SIZE;
pub use ring_hash::DEFAULT_VNODES_PER_WEIGHT;

use cookie::{CookieJar, TokenClash};
use ip_hash::IpHash;
use maglev::Maglev;
use random::WeightedLine;
use ring_hash::Ring;
use round_robin::{RoundRobin, SmoothWeighted};
use slow_start::Ramp;

/// The most backends one pool may have: far above any real pool (so reaching it is a
/// configuration mistake), and low enough that backend indices fit the `u32` tables and the
/// O(n) paths stay in microseconds.
pub const MAX_BACKENDS: usize = 65_536;

/// A balancing algorithm, as named in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Plain rotation over the eligible backends; weights ignored.
    RoundRobin,
    /// nginx's smooth weighted round robin.
    WeightedRoundRobin,
    /// Fewest in-flight requests per unit of weight.
    LeastConnections,
    /// Power of two choices on outstanding requests per unit of weight.
    LeastRequest,
    /// Power of two choices on peak-EWMA latency times outstanding requests.
    LeastResponseTime,
    /// Random, by weight.
    Random,
    /// The client's /24 (IPv4) or /64 (IPv6) hashed onto the weights.
    IpHash,
    /// Consistent hash ring with virtual nodes, on the request's hash key.
    RingHash,
    /// Maglev consistent hashing, on the request's hash key.
    Maglev,
    /// Sticky by cookie, placing new clients with a fallback algorithm.
    Cookie,
}

/// The configuration spellings, in [`Algorithm::ALL`] order, for error messages.
const SPELLINGS: &str = "round_robin, weighted_round_robin, least_connections, least_request, \
                         least_response_time, random, ip_hash, ring_hash, maglev, cookie";

impl Algorithm {
    /// Every algorithm, in the order the documentation lists them.
    pub const ALL: [Self; 10] = [
        Self::RoundRobin,
        Self::WeightedRoundRobin,
        Self::LeastConnections,
        Self::LeastRequest,
        Self::LeastResponseTime,
        Self::Random,
        Self::IpHash,
        Self::RingHash,
        Self::Maglev,
        Self::Cookie,
    ];

    /// The configuration spelling (`"least_request"`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::RoundRobin => "round_robin",
            Self::WeightedRoundRobin => "weighted_round_robin",
            Self::LeastConnections => "least_connections",
            Self::LeastRequest => "least_request",
            Self::LeastResponseTime => "least_response_time",
            Self::Random => "random",
            Self::IpHash => "ip_hash",
            Self::RingHash => "ring_hash",
            Self::Maglev => "maglev",
            Self::Cookie => "cookie",
        }
    }
}

impl fmt::Display for Algorithm {
    /// Writes the configuration spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = ParseAlgorithmError;

    /// Parses exactly a configuration spelling (lowercase, underscores).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name() == text)
            .ok_or_else(|| ParseAlgorithmError {
                given: text.to_owned(),
            })
    }
}

/// A configuration named an algorithm that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown balancing algorithm `{given}`: expected one of {expected}", expected = SPELLINGS)]
pub struct ParseAlgorithmError {
    /// The text that was given.
    pub given: String,
}

/// One backend of a pool, as the selector needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// A stable name, unique in the pool (usually `address:port`): the input of ring hash,
    /// Maglev and cookie tokens, so renaming a backend moves its clients.
    pub name: String,
    /// The backend's share relative to the others.
    pub weight: NonZeroU32,
}

/// Tuning of the table-based algorithms; [`Options::default`] suits almost everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Ring points per unit of weight (`ring_hash`); default
    /// [`DEFAULT_VNODES_PER_WEIGHT`] (160).
    pub vnodes_per_weight: NonZeroU32,
    /// Maglev table size, a prime at least the pool size (`maglev`); default
    /// [`DEFAULT_MAGLEV_TABLE_SIZE`] (65 537).
    pub maglev_table_size: u32,
    /// How `cookie` places clients without a valid cookie; default `weighted_round_robin`.
    pub cookie_fallback: Algorithm,
    /// Mixed into cookie tokens so they cannot be computed from backend addresses; default 0.
    /// Every proxy instance serving the pool must use the same salt.
    pub cookie_salt: u64,
}

impl Default for Options {
    /// The defaults documented on each field.
    fn default() -> Self {
        Self {
            vnodes_per_weight: DEFAULT_VNODES_PER_WEIGHT,
            maglev_table_size: DEFAULT_MAGLEV_TABLE_SIZE,
            cookie_fallback: Algorithm::WeightedRoundRobin,
            cookie_salt: 0,
        }
    }
}

/// Why a selector could not be built: each is a configuration mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Two backends share a name.
    #[error(
        "backend `{name}` is listed twice in the pool: backend names must be unique (they key \
         ring_hash, maglev and cookie)"
    )]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// The pool is larger than [`MAX_BACKENDS`].
    #[error("the pool has {count} backends; at most {max} are supported", max = MAX_BACKENDS)]
    TooManyBackends {
        /// How many backends were given.
        count: usize,
    },
    /// The Maglev table size is not a prime at least the pool size.
    #[error(
        "maglev table size {size} must be a prime number at least the pool size ({backends} \
         backends); 65537 is the usual choice"
    )]
    MaglevTableSize {
        /// The configured size.
        size: u32,
        /// The pool size.
        backends: usize,
    },
    /// `cookie` was asked to fall back to `cookie`.
    #[error("the cookie algorithm cannot fall back to cookie: choose another fallback algorithm")]
    CookieFallback,
    /// Two distinct names hash to the same cookie token (about once in 2^64).
    #[error("backends `{first}` and `{second}` get the same cookie token: change the cookie salt")]
    CookieClash {
        /// One backend's name.
        first: String,
        /// The other's.
        second: String,
    },
}

/// What one request brings to a pick. Slices are indexed by backend, like the pool.
#[derive(Debug, Clone, Copy)]
pub struct SelectInput<'a> {
    /// Which backends may take traffic: healthy and enabled.
    pub eligible: &'a [bool],
    /// Requests in flight per backend (the least-load algorithms).
    pub outstanding: &'a [u32],
    /// Latency estimates per backend (`least_response_time`).
    pub latency: &'a [PeakEwma],
    /// The client's address (`ip_hash`).
    pub client_ip: Option<IpAddr>,
    /// The request's hash key, such as a header's or the path's bytes (`ring_hash`, `maglev`).
    pub hash_key: Option<&'a [u8]>,
    /// The value of the stickiness cookie the client sent (`cookie`).
    pub cookie: Option<&'a str>,
    /// The current time (`least_response_time`).
    pub now: Instant,
    /// Slow start: each backend's weight in effect, in units of 1/[`slow_start::SCALE`] of a
    /// configured weight unit ([`slow_start::effective_weight`]). Empty, or shorter than the
    /// pool: the configured weights (no backend ramps).
    pub weights: &'a [NonZeroU32],
}

impl<'a> SelectInput<'a> {
    /// An input with this mask and time, and no load, address, key or cookie.
    pub fn new(eligible: &'a [bool], now: Instant) -> Self {
        Self {
            eligible,
            outstanding: &[],
            latency: &[],
            client_ip: None,
            hash_key: None,
            cookie: None,
            now,
            weights: &[],
        }
    }
}

/// The outcome of a pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick<'s> {
    /// The chosen backend: an index into the pool.
    pub backend: usize,
    /// For `cookie`: the token the response must set as the cookie's value, when the client's
    /// cookie was absent, unknown or named an ineligible backend. Always `None` otherwise.
    pub set_cookie: Option<&'s str>,
}

/// One pool's balancing: its algorithm, with the tables built for its backend set.
#[derive(Debug)]
pub struct Selector {
    /// The configured algorithm.
    algorithm: Algorithm,
    /// Each backend's weight.
    weights: Box<[NonZeroU32]>,
    /// The algorithm that places requests (for `cookie`, its fallback).
    placement: Placement,
    /// The cookie tokens, for `cookie` only.
    cookies: Option<CookieJar>,
}

/// The per-algorithm tables and state of a selector.
#[derive(Debug)]
enum Placement {
    /// `round_robin`.
    RoundRobin(RoundRobin),
    /// `weighted_round_robin`.
    WeightedRoundRobin(SmoothWeighted),
    /// `least_connections`.
    LeastConnections,
    /// `least_request`.
    LeastRequest,
    /// `least_response_time`.
    LeastResponseTime,
    /// `random`.
    Random(WeightedLine),
    /// `ip_hash`.
    IpHash(IpHash),
    /// `ring_hash`.
    RingHash(Ring),
    /// `maglev`.
    Maglev(Maglev),
}

impl Placement {
    /// The tables of `algorithm` (not `cookie`) for `backends`.
    fn build(
        algorithm: Algorithm,
        backends: &[BackendSpec],
        weights: &[NonZeroU32],
        options: &Options,
    ) -> Result<Self, BuildError> {
        Ok(match algorithm {
            Algorithm::RoundRobin => Self::RoundRobin(RoundRobin::new(backends.len())),
            Algorithm::WeightedRoundRobin => Self::WeightedRoundRobin(SmoothWeighted::new(weights)),
            Algorithm::LeastConnections => Self::LeastConnections,
            Algorithm::LeastRequest => Self::LeastRequest,
            Algorithm::LeastResponseTime => Self::LeastResponseTime,
            Algorithm::Random => Self::Random(WeightedLine::new(weights)),
            Algorithm::IpHash => Self::IpHash(IpHash::new(weights)),
            Algorithm::RingHash => Self::RingHash(Ring::new(backends, options.vnodes_per_weight)),
            Algorithm::Maglev => {
                let size = options.maglev_table_size;
                if !maglev::fits(size, backends.len()) {
                    return Err(BuildError::MaglevTableSize {
                        size,
                        backends: backends.len(),
                    });
                }
                Self::Maglev(Maglev::new(backends, size))
            }
            Algorithm::Cookie => return Err(BuildError::CookieFallback),
        })
    }
}

impl Selector {
    /// A selector for `backends` with [`Options::default`].
    ///
    /// # Errors
    ///
    /// As [`Selector::with_options`].
    pub fn new(algorithm: Algorithm, backends: &[BackendSpec]) -> Result<Self, BuildError> {
        Self::with_options(algorithm, backends, &Options::default())
    }

    /// A selector for `backends`, built once per backend set: O(total weight x 160 x log) for
    /// ring hash, O(M log M) for Maglev (a few milliseconds at the default size), O(n)
    /// otherwise. An empty pool is allowed: it never picks.
    ///
    /// # Errors
    ///
    /// A [`BuildError`] for a duplicate backend name, a pool above [`MAX_BACKENDS`], a Maglev
    /// table size that is not a prime at least the pool size (only for `maglev`, or `cookie`
    /// falling back to it), `cookie` falling back to `cookie`, or (`cookie` only) two names
    /// with the same token.
    pub fn with_options(
        algorithm: Algorithm,
        backends: &[BackendSpec],
        options: &Options,
    ) -> Result<Self, BuildError> {
        if backends.len() > MAX_BACKENDS {
            return Err(BuildError::TooManyBackends {
                count: backends.len(),
            });
        }
        let mut names = FxHashSet::default();
        if let Some(repeated) = backends.iter().find(|b| !names.insert(b.name.as_str())) {
            return Err(BuildError::DuplicateName {
                name: repeated.name.clone(),
            });
        }
        let weights: Box<[NonZeroU32]> = backends.iter().map(|b| b.weight).collect();
        let (placing, cookies) = match algorithm {
            Algorithm::Cookie => {
                let jar = CookieJar::new(backends, options.cookie_salt).map_err(
                    |TokenClash(first, second)| BuildError::CookieClash {
                        first: backends[first].name.clone(),
                        second: backends[second].name.clone(),
                    },
                )?;
                (options.cookie_fallback, Some(jar))
            }
            other => (other, None),
        };
        Ok(Self {
            algorithm,
            placement: Placement::build(placing, backends, &weights, options)?,
            weights,
            cookies,
        })
    }

    /// The configured algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// How many backends the pool has.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// Whether the pool has no backends (it then never picks).
    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    /// Backend `backend`'s cookie token, for `cookie` selectors (`None` otherwise).
    pub fn cookie_token(&self, backend: usize) -> Option<&str> {
        self.cookies.as_ref()?.token(backend)
    }

    /// The backend for one request, or `None` when no backend is eligible.
    ///
    /// Allocates nothing. Never returns an ineligible backend, and returns `None` only when no
    /// backend of the pool is eligible in `input.eligible`.
    pub fn select<'s>(
        &'s self,
        input: &SelectInput<'_>,
        rng: &mut fastrand::Rng,
    ) -> Option<Pick<'s>> {
        let eligible = &input.eligible[..input.eligible.len().min(self.len())];
        match &self.cookies {
            Some(jar) => jar.stick(input.cookie, eligible, || self.place(eligible, input, rng)),
            None => self.place(eligible, input, rng).map(|backend| Pick {
                backend,
                set_cookie: None,
            }),
        }
    }

    /// The placing algorithm's pick (for `cookie`, the fallback's).
    fn place(
        &self,
        eligible: &[bool],
        input: &SelectInput<'_>,
        rng: &mut fastrand::Rng,
    ) -> Option<usize> {
        let ramping = !input.weights.is_empty() && input.weights.len() >= self.len();
        let (weights, ramp) = if ramping {
            let effective = &input.weights[..self.len()];
            (effective, Ramp::new(&self.weights, effective))
        } else {
            (&self.weights[..], Ramp::NONE)
        };
        let key_hash = |rng: &mut fastrand::Rng| match input.hash_key {
            Some(key) => hash::xxh64(key, hash::seed::KEY),
            None => rng.u64(..),
        };
        match &self.placement {
            Placement::RoundRobin(rotation) => rotation.select(eligible),
            Placement::WeightedRoundRobin(schedule) if ramping => {
                schedule.select_weighted(eligible, weights)
            }
            Placement::WeightedRoundRobin(schedule) => schedule.select(eligible),
            Placement::LeastConnections => {
                least_connections::select(eligible, input.outstanding, weights, rng)
            }
            Placement::LeastRequest => {
                least_request::select(eligible, input.outstanding, weights, rng)
            }
            Placement::LeastResponseTime => least_response_time::select(
                eligible,
                input.outstanding,
                input.latency,
                weights,
                input.now,
                rng,
            ),
            Placement::Random(line) if ramping => line.select_weighted(eligible, weights, rng),
            Placement::Random(line) => line.select(eligible, rng),
            Placement::IpHash(mapping) => mapping.select(input.client_ip, eligible, &ramp, rng),
            Placement::RingHash(ring) => ring.select(key_hash(rng), eligible, &ramp),
            Placement::Maglev(table) => table.select(key_hash(rng), eligible, &ramp),
        }
    }
}

/// `T` on cache lines of its own (128 bytes, as x86 fetches lines in adjacent pairs), so a
/// counter that every worker writes on every request does not keep evicting the read-mostly
/// fields next to it from the other cores' caches.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Padded<T>(pub T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Tests of the selector, and helpers the algorithm modules' tests share.

    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use std::ops::Range;

    /// A pool with these weights, named `10.0.x.y:8080` by index.
    pub fn backends(weights: &[u32]) -> Vec<BackendSpec> {
        weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| BackendSpec {
                name: format!("10.0.{}.{}:8080", index / 256, index % 256),
                weight: NonZeroU32::new(weight).unwrap_or(NonZeroU32::MIN),
            })
            .collect()
    }

    /// Weights (in `weight`) for `count` backends, and a mask with each backend eligible with
    /// probability 3/4.
    pub fn weights_strategy(
        count: Range<usize>,
        weight: Range<u32>,
    ) -> impl Strategy<Value = (Vec<u32>, Vec<bool>)> {
        prop::collection::vec((weight, prop::bool::weighted(0.75)), count)
            .prop_map(|pairs| pairs.into_iter().unzip())
    }

    /// `count` random 16-byte keys from `seed`.
    pub fn random_keys(seed: u64, count: usize) -> Vec<[u8; 16]> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..count).map(|_| rng.u128(..).to_le_bytes()).collect()
    }

    /// Each eligible backend's expected share: its weight over the eligible total.
    fn expected_shares(weights: &[u32], eligible: &[bool]) -> Vec<f64> {
        let total: u32 = weights
            .iter()
            .zip(eligible)
            .filter(|(_, ok)| **ok)
            .map(|(w, _)| w)
            .sum();
        weights
            .iter()
            .zip(eligible)
            .map(|(&w, &ok)| {
                if ok {
                    f64::from(w) / f64::from(total)
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// Checks that `picks` follow the weights of the eligible backends as a multinomial
    /// sample: each count within `sigmas` standard deviations (plus one) of its expectation,
    /// and ineligible backends never picked.
    pub fn assert_shares(
        picks: &[u64],
        weights: &[u32],
        eligible: &[bool],
        sigmas: f64,
    ) -> Result<(), TestCaseError> {
        let trials = picks.iter().sum::<u64>() as f64;
        for (index, share) in expected_shares(weights, eligible).into_iter().enumerate() {
            let expected = trials * share;
            let deviation = sigmas * (trials * share * (1.0 - share)).sqrt() + 1.0;
            let got = picks[index] as f64;
            prop_assert!(
                (got - expected).abs() <= deviation,
                "backend {} picked {} times, expected {:.0} +- {:.0} ({:?} / {:?})",
                index,
                got,
                expected,
                deviation,
                picks,
                weights
            );
        }
        Ok(())
    }

    /// Checks that `picks` follow the weights of the eligible backends within `relative` of
    /// each share, and ineligible backends are never picked.
    pub fn assert_shares_within(
        picks: &[u64],
        weights: &[u32],
        eligible: &[bool],
        relative: f64,
    ) -> Result<(), TestCaseError> {
        let trials = picks.iter().sum::<u64>() as f64;
        for (index, share) in expected_shares(weights, eligible).into_iter().enumerate() {
            let got = picks[index] as f64;
            if share == 0.0 {
                prop_assert_eq!(picks[index], 0);
            } else {
                let ratio = got / (trials * share);
                prop_assert!(
                    (ratio - 1.0).abs() <= relative,
                    "backend {} got {:.3} of its share ({:?} / {:?})",
                    index,
                    ratio,
                    picks,
                    weights
                );
            }
        }
        Ok(())
    }

    /// A selector, or a test failure naming the build error.
    fn selector(algorithm: Algorithm, weights: &[u32]) -> Selector {
        Selector::new(algorithm, &backends(weights)).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn algorithm_spellings_round_trip() {
        for algorithm in Algorithm::ALL {
            assert_eq!(algorithm.name().parse::<Algorithm>(), Ok(algorithm));
            assert_eq!(algorithm.to_string(), algorithm.name());
        }
        let listed: Vec<&str> = SPELLINGS.split(", ").collect();
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(listed, names, "the error message lists every spelling");
    }

    #[test]
    fn only_exact_spellings_parse() {
        for bad in [
            "",
            "RoundRobin",
            "round-robin",
            "Round_Robin",
            " maglev",
            "maglev ",
            "wrr",
        ] {
            let error = bad.parse::<Algorithm>().err();
            assert_eq!(error.as_ref().map(|e| e.given.as_str()), Some(bad));
            let message = error.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.contains("round_robin, weighted_round_robin"),
                "{message}"
            );
            assert!(message.ends_with("maglev, cookie"), "{message}");
        }
    }

    #[test]
    fn build_errors() {
        let mut pool = backends(&[1, 1, 1]);
        pool[2].name = pool[0].name.clone();
        assert_eq!(
            Selector::new(Algorithm::RoundRobin, &pool).err(),
            Some(BuildError::DuplicateName {
                name: pool[0].name.clone()
            })
        );
        let pool = backends(&[1, 1, 1]);
        for size in [65_536, 1, 0, 2] {
            let options = Options {
                maglev_table_size: size,
                ..Options::default()
            };
            assert_eq!(
                Selector::with_options(Algorithm::Maglev, &pool, &options).err(),
                Some(BuildError::MaglevTableSize { size, backends: 3 })
            );
        }
        let options = Options {
            cookie_fallback: Algorithm::Cookie,
            ..Options::default()
        };
        assert_eq!(
            Selector::with_options(Algorithm::Cookie, &pool, &options).err(),
            Some(BuildError::CookieFallback)
        );
        let huge = backends(&vec![1; MAX_BACKENDS + 1]);
        assert_eq!(
            Selector::new(Algorithm::Random, &huge).err(),
            Some(BuildError::TooManyBackends {
                count: MAX_BACKENDS + 1
            })
        );
        assert!(Selector::new(Algorithm::Random, &huge[..MAX_BACKENDS]).is_ok());
    }

    #[test]
    fn selector_is_shared_between_threads() {
        /// Compiles only for `Send + Sync` types.
        fn shared<T: Send + Sync>() {}
        shared::<Selector>();
    }

    #[test]
    fn weighted_round_robin_5_1_1_through_the_selector() {
        let selector = selector(Algorithm::WeightedRoundRobin, &[5, 1, 1]);
        let eligible = [true; 3];
        let input = SelectInput::new(&eligible, Instant::now());
        let mut rng = fastrand::Rng::with_seed(0);
        let picks: String = (0..7)
            .filter_map(|_| selector.select(&input, &mut rng))
            .map(|pick| char::from(b'a' + pick.backend as u8))
            .collect();
        assert_eq!(picks, "aabacaa");
    }

    #[test]
    fn empty_pool_and_single_backend() {
        let now = Instant::now();
        let mut rng = fastrand::Rng::with_seed(0);
        for algorithm in Algorithm::ALL {
            let empty = selector(algorithm, &[]);
            assert!(empty.is_empty());
            assert_eq!(
                empty.select(&SelectInput::new(&[true], now), &mut rng),
                None
            );
            let one = selector(algorithm, &[3]);
            let pick = one.select(&SelectInput::new(&[true], now), &mut rng);
            assert_eq!(pick.map(|p| p.backend), Some(0), "{algorithm}");
            assert_eq!(one.select(&SelectInput::new(&[false], now), &mut rng), None);
        }
    }

    #[test]
    fn cookie_sticks_through_the_selector() {
        let selector = selector(Algorithm::Cookie, &[1, 1, 1]);
        let mut rng = fastrand::Rng::with_seed(0);
        let all = [true; 3];
        let mut input = SelectInput::new(&all, Instant::now());
        let first = selector.select(&input, &mut rng);
        let token = first.and_then(|pick| pick.set_cookie);
        assert!(token.is_some(), "a new client gets a cookie");
        assert_eq!(
            token,
            first.and_then(|pick| selector.cookie_token(pick.backend))
        );
        input.cookie = token;
        for _ in 0..10 {
            let again = selector.select(&input, &mut rng);
            assert_eq!(
                again.map(|p| (p.backend, p.set_cookie)),
                first.map(|p| (p.backend, None))
            );
        }
        let mut mask = all;
        mask[first.map_or(0, |p| p.backend)] = false;
        input.eligible = &mask;
        let moved = selector.select(&input, &mut rng);
        assert_ne!(moved.map(|p| p.backend), first.map(|p| p.backend));
        assert_eq!(
            moved.and_then(|p| p.set_cookie),
            moved.and_then(|p| selector.cookie_token(p.backend))
        );
        assert_eq!(
            selector.cookie_token(0).map(str::len),
            Some(COOKIE_TOKEN_LEN)
        );
        assert_eq!(
            Selector::new(Algorithm::Random, &backends(&[1]))
                .ok()
                .and_then(|s| s.cookie_token(0).map(str::to_owned)),
            None
        );
    }

    /// An input drawing every field from `rng`, with `eligible` as the mask and `weights` as
    /// the weights in effect (half the time).
    #[expect(clippy::too_many_arguments, reason = "one argument per input field")]
    fn random_input<'a>(
        eligible: &'a [bool],
        outstanding: &'a [u32],
        latency: &'a [PeakEwma],
        key: &'a [u8],
        cookie: Option<&'a str>,
        weights: &'a [NonZeroU32],
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> SelectInput<'a> {
        SelectInput {
            eligible,
            outstanding,
            latency,
            client_ip: rng.bool().then(|| IpAddr::from(rng.u32(..).to_be_bytes())),
            hash_key: rng.bool().then_some(key),
            cookie,
            now,
            weights: if rng.bool() { weights } else { &[] },
        }
    }

    /// How often backend `index` of `selector` is picked among `picks` requests with random
    /// keys and client addresses, the weights in effect `weights` (empty: none) and an idle,
    /// fully eligible pool.
    fn share(
        selector: &Selector,
        index: usize,
        weights: &[NonZeroU32],
        picks: u32,
        rng: &mut fastrand::Rng,
    ) -> f64 {
        let eligible = vec![true; selector.len()];
        let now = Instant::now();
        let mut hits = 0u32;
        for _ in 0..picks {
            let key = rng.u64(..).to_le_bytes();
            let input = SelectInput {
                client_ip: Some(IpAddr::from(rng.u32(..).to_be_bytes())),
                hash_key: Some(&key),
                weights,
                ..SelectInput::new(&eligible, now)
            };
            if selector.select(&input, rng).map(|pick| pick.backend) == Some(index) {
                hits += 1;
            }
        }
        f64::from(hits) / f64::from(picks)
    }

    /// Under slow start, a backend that just became eligible again takes a share that grows
    /// over the window, starts well below its steady share, and ends at exactly the share it
    /// has without slow start, under every algorithm that reads weights. For the weighted
    /// algorithms without load (where the share follows the weights) the share is the weight
    /// in effect over the total; for the hashing ones, the ramp's fraction of the steady share.
    #[test]
    fn slow_start_share_grows_to_the_steady_share() {
        const PICKS: u32 = 10_000;
        let configured = [1u32, 3, 2];
        let pool = backends(&configured);
        let (from, window) = (5_000u64, 10_000u64);
        for algorithm in Algorithm::ALL {
            if algorithm == Algorithm::RoundRobin {
                continue;
            }
            let options = Options {
                maglev_table_size: 4_099,
                ..Options::default()
            };
            let selector = Selector::with_options(algorithm, &pool, &options)
                .unwrap_or_else(|error| panic!("{error}"));
            let mut rng = fastrand::Rng::with_seed(29);
            let steady = share(&selector, 1, &[], PICKS, &mut rng);
            let mut shares = Vec::new();
            for step in 0..=10 {
                let now = from + window * step / 10;
                let weights: Vec<NonZeroU32> = pool
                    .iter()
                    .enumerate()
                    .map(|(index, backend)| {
                        let ramp_from = if index == 1 { from } else { 0 };
                        slow_start::effective_weight(backend.weight, ramp_from, now, window)
                    })
                    .collect();
                let got = share(&selector, 1, &weights, PICKS, &mut rng);
                let total: u32 = weights.iter().map(|weight| weight.get()).sum();
                let fraction = f64::from(weights[1].get()) / f64::from(3 * slow_start::SCALE);
                let model = match algorithm {
                    Algorithm::WeightedRoundRobin
                    | Algorithm::Cookie
                    | Algorithm::LeastConnections
                    | Algorithm::Random => Some(f64::from(weights[1].get()) / f64::from(total)),
                    Algorithm::IpHash | Algorithm::RingHash | Algorithm::Maglev => {
                        Some(fraction * steady)
                    }
                    _ => None,
                };
                if let Some(model) = model {
                    assert!(
                        (got - model).abs() < 0.025,
                        "{algorithm} at step {step}: share {got:.3}, model {model:.3}"
                    );
                }
                shares.push(got);
            }
            for pair in shares.windows(2) {
                assert!(
                    pair[1] >= pair[0] - 0.025,
                    "{algorithm}: the share fell: {shares:.3?}"
                );
            }
            assert!(
                shares[0] < steady / 2.0,
                "{algorithm}: starts at {:.3} of a steady {steady:.3}",
                shares[0]
            );
            assert!(
                (shares[10] - steady).abs() < 0.025,
                "{algorithm}: ends at {:.3} of a steady {steady:.3}",
                shares[10]
            );
        }
    }

    #[test]
    fn weights_shorter_than_the_pool_are_ignored() {
        let first = selector(Algorithm::WeightedRoundRobin, &[5, 1, 1]);
        let eligible = [true; 3];
        let short = [NonZeroU32::MIN; 2];
        let input = SelectInput {
            weights: &short,
            ..SelectInput::new(&eligible, Instant::now())
        };
        let mut rng = fastrand::Rng::with_seed(0);
        let picks: String = (0..7)
            .filter_map(|_| first.select(&input, &mut rng))
            .map(|pick| char::from(b'a' + pick.backend as u8))
            .collect();
        assert_eq!(picks, "aabacaa");
        let scaled = [5, 1, 1].map(|w| NonZeroU32::new(w * slow_start::SCALE).unwrap());
        let input = SelectInput {
            weights: &scaled,
            ..SelectInput::new(&eligible, Instant::now())
        };
        let fresh = selector(Algorithm::WeightedRoundRobin, &[5, 1, 1]);
        let picks: String = (0..7)
            .filter_map(|_| fresh.select(&input, &mut rng))
            .map(|pick| char::from(b'a' + pick.backend as u8))
            .collect();
        assert_eq!(picks, "aabacaa", "full weights in effect: nginx's sequence");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every algorithm returns `None` exactly when no backend of the pool is eligible, and
        /// otherwise an eligible backend; masks may be shorter or longer than the pool.
        #[test]
        fn none_iff_no_backend_is_eligible(
            weights in prop::collection::vec(1u32..5, 0..9),
            eligible in prop::collection::vec(any::<bool>(), 0..12),
            outstanding in prop::collection::vec(0u32..20, 0..12),
            seed in any::<u64>(),
        ) {
            let pool = backends(&weights);
            let now = Instant::now();
            let latency: Vec<PeakEwma> = (0..eligible.len() as u64)
                .map(|i| PeakEwma::new(std::time::Duration::from_millis(i + 1), PeakEwma::DEFAULT_DECAY, now))
                .collect();
            let any_eligible = eligible.iter().take(pool.len()).any(|&ok| ok);
            let effective: Vec<NonZeroU32> = (0..pool.len())
                .map(|index| NonZeroU32::new(seed.rotate_left(index as u32) as u32 % 5_000 + 1).unwrap_or(NonZeroU32::MIN))
                .collect();
            let mut rng = fastrand::Rng::with_seed(seed);
            for algorithm in Algorithm::ALL {
                let options = Options { maglev_table_size: 211, ..Options::default() };
                let selector = Selector::with_options(algorithm, &pool, &options)
                    .map_err(|error| TestCaseError::fail(error.to_string()))?;
                let token = selector.cookie_token(rng.usize(..pool.len().max(1))).map(str::to_owned);
                for _ in 0..12 {
                    let key = rng.u64(..).to_le_bytes();
                    let cookie = token.as_deref().filter(|_| rng.bool());
                    let input = random_input(&eligible, &outstanding, &latency, &key, cookie, &effective, now, &mut rng);
                    match selector.select(&input, &mut rng) {
                        Some(pick) => {
                            prop_assert!(pick.backend < pool.len(), "{}", algorithm);
                            prop_assert!(eligible[pick.backend], "{} picked an ineligible backend", algorithm);
                        }
                        None => prop_assert!(!any_eligible, "{} found nothing", algorithm),
                    }
                }
            }
        }
    }
}
