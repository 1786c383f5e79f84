//! `ip_hash`: a client's network prefix hashed to a backend, by weight, as nginx's `ip_hash`.
//!
//! The key is the client's IPv4 /24 (nginx's choice: the first three octets) or its IPv6 /64.
//! nginx hashes the whole IPv6 address, but hosts rotate their privacy addresses (RFC 8981)
//! inside a /64, which would move them between backends; a /64 is the IPv6 analogue of one
//! site. IPv4-mapped IPv6 addresses count as IPv4. A request without a client address (a Unix
//! socket) gets a random backend.
//!
//! The prefix's XXH64 is placed on the weighted line (each backend covering a stretch as long
//! as its weight), so shares follow the weights and the mapping is stable while the backend set
//! is. When the chosen backend is ineligible the hash is re-hashed, up to [`REHASHES`] times as
//! nginx does (O(1) each), then placed on the line of the eligible backends alone (O(n)):
//! clients of eligible backends never move, and a down backend's clients spread over the
//! others exactly by weight. A change of the backend set (not of eligibility) reshuffles
//! clients; `ring_hash` and `maglev` are the algorithms that keep that movement minimal.

use std::net::IpAddr;
use std::num::NonZeroU32;

use super::hash::{reduce, seed, xxh64};
use super::random::WeightedLine;
use super::slow_start::Ramp;

/// How many times an ineligible choice is re-hashed before the O(n) placement among the
/// eligible backends: nginx's 20. With half the weight down, all 20 miss about once in a
/// million.
pub const REHASHES: u64 = 20;

/// The client-prefix-to-backend mapping of one backend set.
#[derive(Debug, Clone)]
pub struct IpHash {
    /// The backends on the weighted line.
    line: WeightedLine,
}

impl IpHash {
    /// The mapping for these weights (in backend order).
    pub fn new(weights: &[NonZeroU32]) -> Self {
        Self {
            line: WeightedLine::new(weights),
        }
    }

    /// The backend for `client` (a random one without a client address). Under slow start a
    /// ramping backend counts as eligible only for the prefixes it takes (see
    /// [`Ramp::admission`]).
    pub fn select(
        &self,
        client: Option<IpAddr>,
        eligible: &[bool],
        ramp: &Ramp<'_>,
        rng: &mut fastrand::Rng,
    ) -> Option<usize> {
        let total = self.line.total();
        if total == 0 {
            return None;
        }
        let mut hash = client.map_or_else(|| rng.u64(..), prefix_hash);
        let admission = ramp.admission(hash, eligible);
        let mut backend = self.line.locate(reduce(hash, total));
        for attempt in 0..REHASHES {
            if admission.takes(eligible, backend) {
                return Some(backend);
            }
            hash = xxh64(&hash.to_le_bytes(), seed::REHASH.wrapping_add(attempt));
            backend = self.line.locate(reduce(hash, total));
        }
        self.line.among_eligible(eligible, &admission, hash)
    }
}

/// The hash of the network prefix that stands for `client`: its /24 for IPv4 (and
/// IPv4-mapped IPv6), its /64 for IPv6.
pub fn prefix_hash(client: IpAddr) -> u64 {
    match client.to_canonical() {
        IpAddr::V4(v4) => xxh64(&v4.octets()[..3], seed::CLIENT_IP),
        IpAddr::V6(v6) => xxh64(&v6.octets()[..8], seed::CLIENT_IP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::tests::{assert_shares, weights_strategy};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// Weights from plain numbers.
    fn weights(raw: &[u32]) -> Vec<NonZeroU32> {
        raw.iter().filter_map(|&w| NonZeroU32::new(w)).collect()
    }

    /// An address from text.
    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn the_key_is_the_v4_slash_24_or_the_v6_slash_64() {
        assert_eq!(prefix_hash(ip("192.0.2.1")), prefix_hash(ip("192.0.2.254")));
        assert_ne!(prefix_hash(ip("192.0.2.1")), prefix_hash(ip("192.0.3.1")));
        assert_eq!(
            prefix_hash(ip("::ffff:192.0.2.7")),
            prefix_hash(ip("192.0.2.1"))
        );
        assert_eq!(
            prefix_hash(ip("2001:db8:1:2:aaaa::1")),
            prefix_hash(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            prefix_hash(ip("2001:db8:1:2::1")),
            prefix_hash(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn stable_while_the_set_is_unchanged() {
        let mapping = IpHash::new(&weights(&[1, 2, 3, 1]));
        let mut rng = fastrand::Rng::with_seed(1);
        for octet in 0..=255u8 {
            let client = IpAddr::V4(Ipv4Addr::new(198, 51, octet, 9));
            let first = mapping.select(Some(client), &[true; 4], &Ramp::NONE, &mut rng);
            let again = IpHash::new(&weights(&[1, 2, 3, 1])).select(
                Some(client),
                &[true; 4],
                &Ramp::NONE,
                &mut rng,
            );
            assert_eq!(first, again);
        }
    }

    #[test]
    fn edge_cases() {
        let mut rng = fastrand::Rng::with_seed(1);
        let client = Some(ip("203.0.113.5"));
        assert_eq!(
            IpHash::new(&[]).select(client, &[], &Ramp::NONE, &mut rng),
            None
        );
        let mapping = IpHash::new(&weights(&[1, 1, 1]));
        assert_eq!(
            mapping.select(client, &[false; 3], &Ramp::NONE, &mut rng),
            None
        );
        assert_eq!(
            mapping.select(client, &[false, false, true], &Ramp::NONE, &mut rng),
            Some(2)
        );
        assert_eq!(
            mapping.select(None, &[true, false], &Ramp::NONE, &mut rng),
            Some(0),
            "no address: random"
        );
        assert_eq!(
            IpHash::new(&weights(&[7])).select(client, &[true], &Ramp::NONE, &mut rng),
            Some(0)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Over many client networks, shares follow the weights of the eligible backends
        /// (within 5 standard deviations), and a client of an eligible backend stays put when
        /// other backends turn ineligible.
        #[test]
        fn shares_follow_the_weights(
            (raw, eligible) in weights_strategy(1..8, 1..6),
            seed in any::<u64>(),
        ) {
            let mapping = IpHash::new(&weights(&raw));
            let all = vec![true; raw.len()];
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut picks = vec![0u64; raw.len()];
            for _ in 0..4_000 {
                let client = if rng.bool() {
                    IpAddr::V4(Ipv4Addr::from(rng.u32(..)))
                } else {
                    IpAddr::V6(Ipv6Addr::from(rng.u128(..)))
                };
                let before = mapping.select(Some(client), &all, &Ramp::NONE, &mut rng);
                match mapping.select(Some(client), &eligible, &Ramp::NONE, &mut rng) {
                    Some(backend) => {
                        picks[backend] += 1;
                        if let Some(before) = before.filter(|&b| eligible[b]) {
                            prop_assert_eq!(backend, before);
                        }
                    }
                    None => prop_assert!(!eligible.contains(&true)),
                }
            }
            assert_shares(&picks, &raw, &eligible, 5.0)?;
        }
    }
}
