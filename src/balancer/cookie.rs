//! `cookie`: sticky sessions. A client that presents the cookie of an eligible backend goes back
//! to it; any other client is placed by a fallback algorithm and told to (re)set its cookie.
//!
//! A backend's token is the 16 lowercase hex digits of `xxh64(name, COOKIE ^ salt)`: stable
//! across restarts and processes (so every proxy instance agrees), and it does not show the
//! backend's address. It does not hide it either: from a list of candidate addresses anyone
//! can compute the tokens, so an operator who cares sets a secret salt. The proxy owns the
//! cookie's name and attributes (`Path`, `HttpOnly`, `Max-Age`); this module only decides.

use super::eligible;
use super::hash::{seed, xxh64};
use super::{BackendSpec, Pick};

/// Length of a token: 16 hex digits (64 bits).
pub const TOKEN_LEN: usize = 16;

/// The tokens of one backend set and their reverse lookup.
#[derive(Debug, Clone)]
pub struct CookieJar {
    /// `tokens[i]` is backend `i`'s token, ready to send.
    tokens: Box<[Box<str>]>,
    /// `(token value, backend)`, sorted by value, for the lookup of a presented cookie.
    by_value: Box<[(u64, u32)]>,
}

/// Two backends whose names give the same token (their indices): the names are the same, or
/// (about once in 2^64) the hashes collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenClash(pub usize, pub usize);

impl CookieJar {
    /// The tokens of `backends` with the operator's `salt`; fails if two backends would share
    /// a token. The pool must have at most `u32::MAX` backends (the selector caps it lower).
    pub fn new(backends: &[BackendSpec], salt: u64) -> Result<Self, TokenClash> {
        let values: Vec<u64> = backends
            .iter()
            .map(|backend| xxh64(backend.name.as_bytes(), seed::COOKIE ^ salt))
            .collect();
        let mut by_value: Vec<(u64, u32)> = values
            .iter()
            .enumerate()
            .map(|(index, &value)| (value, index as u32))
            .collect();
        by_value.sort_unstable();
        if let Some(pair) = by_value.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(TokenClash(pair[0].1 as usize, pair[1].1 as usize));
        }
        Ok(Self {
            tokens: values
                .iter()
                .map(|value| format!("{value:016x}").into_boxed_str())
                .collect(),
            by_value: by_value.into_boxed_slice(),
        })
    }

    /// Backend `backend`'s token, if there is such a backend.
    pub fn token(&self, backend: usize) -> Option<&str> {
        self.tokens.get(backend).map(|token| &**token)
    }

    /// The backend a presented cookie value names, if it is one of this set's tokens. Anything
    /// else (another length, upper case, a removed backend's token) names none.
    pub fn backend(&self, cookie: &str) -> Option<usize> {
        let is_token = cookie.len() == TOKEN_LEN
            && cookie
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        let value = u64::from_str_radix(cookie, 16).ok().filter(|_| is_token)?;
        let found = self
            .by_value
            .binary_search_by_key(&value, |&(value, _)| value);
        found.ok().map(|at| self.by_value[at].1 as usize)
    }

    /// The backend for a request presenting `cookie`: the backend it names while that is
    /// eligible (no cookie to set); otherwise `fallback`'s pick, with that backend's token to
    /// set. `None` only if the fallback finds nothing.
    pub fn stick(
        &self,
        cookie: Option<&str>,
        eligible: &[bool],
        fallback: impl FnOnce() -> Option<usize>,
    ) -> Option<Pick<'_>> {
        let sticky = cookie
            .and_then(|cookie| self.backend(cookie))
            .filter(|&backend| eligible::is_eligible(eligible, backend));
        if let Some(backend) = sticky {
            return Some(Pick {
                backend,
                set_cookie: None,
            });
        }
        let backend = fallback()?;
        Some(Pick {
            backend,
            set_cookie: self.token(backend),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::tests::backends;
    use proptest::prelude::*;

    /// The first eligible backend: a simple, predictable fallback.
    fn first(eligible: &[bool]) -> Option<usize> {
        eligible.iter().position(|&ok| ok)
    }

    #[test]
    fn tokens_are_hex_and_stable() {
        let jar = CookieJar::new(&backends(&[1, 1]), 0).unwrap_or_else(|clash| panic!("{clash:?}"));
        let token = jar.token(0).unwrap_or_default();
        assert_eq!(token.len(), TOKEN_LEN);
        assert!(!token.contains("10.0"), "no address in the token");
        assert_eq!(
            token,
            format!("{:016x}", xxh64(b"10.0.0.0:8080", seed::COOKIE))
        );
        assert_eq!(jar.backend(token), Some(0));
        let salted =
            CookieJar::new(&backends(&[1, 1]), 42).unwrap_or_else(|clash| panic!("{clash:?}"));
        assert_ne!(salted.token(0), jar.token(0), "the salt changes the tokens");
        assert_eq!(salted.backend(token), None);
    }

    #[test]
    fn malformed_cookies_name_nothing() {
        let jar = CookieJar::new(&backends(&[1]), 0).unwrap_or_else(|clash| panic!("{clash:?}"));
        let token = jar.token(0).unwrap_or_default().to_owned();
        for bad in [
            String::new(),
            token.to_uppercase(),
            format!("+{}", &token[1..]),
            format!("{token}0"),
            token[1..].to_owned(),
            "zzzzzzzzzzzzzzzz".to_owned(),
        ] {
            assert_eq!(jar.backend(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn duplicate_names_clash() {
        let mut pool = backends(&[1, 1, 1]);
        pool[2].name = pool[0].name.clone();
        assert_eq!(CookieJar::new(&pool, 0).err(), Some(TokenClash(0, 2)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// A client stays on its backend while it is eligible, without a new cookie; when it is
        /// not (or the cookie is absent or unknown), the client moves to an eligible backend
        /// and gets that backend's cookie.
        #[test]
        fn sticky_while_eligible(
            eligible in prop::collection::vec(any::<bool>(), 1..10),
            cookie_for in 0usize..12,
            unknown in any::<bool>(),
        ) {
            let jar = CookieJar::new(&backends(&vec![1; eligible.len()]), 7)
                .map_err(|clash| TestCaseError::fail(format!("{clash:?}")))?;
            let cookie = if unknown { Some("0123456789abcdef") } else { jar.token(cookie_for) };
            let pick = jar.stick(cookie, &eligible, || first(&eligible));
            prop_assert_eq!(pick.is_some(), eligible.contains(&true));
            if let Some(pick) = pick {
                prop_assert!(eligible[pick.backend]);
                let stays = !unknown && cookie_for < eligible.len() && eligible[cookie_for];
                if stays {
                    prop_assert_eq!(pick, Pick { backend: cookie_for, set_cookie: None });
                } else {
                    prop_assert_eq!(pick.set_cookie, jar.token(pick.backend));
                    prop_assert_eq!(jar.backend(pick.set_cookie.unwrap_or_default()), Some(pick.backend));
                }
            }
        }
    }
}
