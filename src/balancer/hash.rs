//! Stable 64-bit hashing for the key-based algorithms: XXH64, written out from its specification.
//!
//! The consistent algorithms (ring hash, Maglev, IP hash) and the cookie tokens must map the
//! same input to the same backend in every process, on every platform and after every restart,
//! or a rolling restart would reshuffle every client. `std`'s `RandomState` is seeded per process
//! and `DefaultHasher`'s algorithm may change between Rust releases, so neither will do; XXH64
//! is fast, well mixed, specified byte for byte, and checked below against the reference vectors.

/// Seeds that keep the hash families apart, so that (for example) a request key equal to a
/// backend's name does not land exactly on that backend's ring points or Maglev offset. The
/// values are arbitrary but fixed forever: changing one moves every client of that algorithm.
pub mod seed {
    /// Request keys of ring hash and Maglev.
    pub const KEY: u64 = 0;
    /// Client address prefixes of IP hash.
    pub const CLIENT_IP: u64 = 0x6970_5f68_6173_6801;
    /// A Maglev backend's offset into its permutation.
    pub const MAGLEV_OFFSET: u64 = 0x6d61_676c_6576_0001;
    /// A Maglev backend's skip (stride) through its permutation.
    pub const MAGLEV_SKIP: u64 = 0x6d61_676c_6576_0002;
    /// The re-probes of a Maglev key whose slot's owner is ineligible.
    pub const MAGLEV_PROBE: u64 = 0x6d61_676c_6576_0003;
    /// Cookie tokens (xored with the operator's salt).
    pub const COOKIE: u64 = 0x636f_6f6b_6965_0001;
    /// The rehash chain of IP hash when the first choice is ineligible.
    pub const REHASH: u64 = 0x7265_6861_7368_0001;
    /// A key's point for slow start's admission by a ramping backend.
    pub const SLOW_START: u64 = 0x736c_6f77_5f73_0001;
}

/// XXH64 prime 1.
const PRIME_1: u64 = 0x9E37_79B1_85EB_CA87;
/// XXH64 prime 2.
const PRIME_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
/// XXH64 prime 3.
const PRIME_3: u64 = 0x1656_67B1_9E37_79F9;
/// XXH64 prime 4.
const PRIME_4: u64 = 0x85EB_CA77_C2B2_AE63;
/// XXH64 prime 5.
const PRIME_5: u64 = 0x27D4_EB2F_1656_67C5;

/// The XXH64 hash of `input` with `seed` (the canonical big-endian digest read as a `u64`).
pub fn xxh64(input: &[u8], seed: u64) -> u64 {
    let mut rest = input;
    let mut hash = if input.len() >= 32 {
        let mut lanes = [
            seed.wrapping_add(PRIME_1).wrapping_add(PRIME_2),
            seed.wrapping_add(PRIME_2),
            seed,
            seed.wrapping_sub(PRIME_1),
        ];
        while let Some((stripe, tail)) = rest.split_first_chunk::<32>() {
            for (index, lane) in lanes.iter_mut().enumerate() {
                *lane = round(*lane, read_u64(stripe, index * 8));
            }
            rest = tail;
        }
        let [v1, v2, v3, v4] = lanes;
        let mut hash = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        for lane in lanes {
            hash = merge_round(hash, lane);
        }
        hash
    } else {
        seed.wrapping_add(PRIME_5)
    };
    hash = hash.wrapping_add(input.len() as u64);
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        hash ^= round(0, u64::from_le_bytes(*word));
        hash = hash
            .rotate_left(27)
            .wrapping_mul(PRIME_1)
            .wrapping_add(PRIME_4);
        rest = tail;
    }
    if let Some((word, tail)) = rest.split_first_chunk::<4>() {
        hash ^= u64::from(u32::from_le_bytes(*word)).wrapping_mul(PRIME_1);
        hash = hash
            .rotate_left(23)
            .wrapping_mul(PRIME_2)
            .wrapping_add(PRIME_3);
        rest = tail;
    }
    for &byte in rest {
        hash ^= u64::from(byte).wrapping_mul(PRIME_5);
        hash = hash.rotate_left(11).wrapping_mul(PRIME_1);
    }
    avalanche(hash)
}

/// Maps a 64-bit hash onto `0..range` without the bias or division of `%` (Lemire's
/// multiply-shift). `range` must be non-zero; the result is then below it.
pub fn reduce(hash: u64, range: u64) -> u64 {
    ((u128::from(hash) * u128::from(range)) >> 64) as u64
}

/// The little-endian `u64` at `offset` of a 32-byte stripe (`offset` is 0, 8, 16 or 24).
fn read_u64(stripe: &[u8; 32], offset: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&stripe[offset..offset + 8]);
    u64::from_le_bytes(word)
}

/// One XXH64 accumulation round of `input` into `accumulator`.
fn round(accumulator: u64, input: u64) -> u64 {
    accumulator
        .wrapping_add(input.wrapping_mul(PRIME_2))
        .rotate_left(31)
        .wrapping_mul(PRIME_1)
}

/// Folds one of the four stripe lanes into the hash.
fn merge_round(hash: u64, lane: u64) -> u64 {
    (hash ^ round(0, lane))
        .wrapping_mul(PRIME_1)
        .wrapping_add(PRIME_4)
}

/// The final mix, so that every input bit affects every output bit.
fn avalanche(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(PRIME_2);
    hash ^= hash >> 29;
    hash = hash.wrapping_mul(PRIME_3);
    hash ^ (hash >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 101-byte buffer of xxHash's own sanity check (`xsum_sanity_check.c`, old layout).
    fn sanity_buffer() -> Vec<u8> {
        let mut generator: u32 = 2_654_435_761;
        (0..101)
            .map(|_| {
                let byte = (generator >> 24) as u8;
                generator = generator.wrapping_mul(generator);
                byte
            })
            .collect()
    }

    #[test]
    fn matches_the_reference_vectors() {
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"", 1), 0xD5AF_BA13_36A3_BE4B);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        assert_eq!(xxh64(b"asdf", 0), 0x4158_72F5_99CE_A71E);
        assert_eq!(xxh64(b"Call me Ishmael.", 0), 0x6D04_390F_C9D6_1A90);
        assert_eq!(
            xxh64(b"Nobody inspects the spammish repetition", 0),
            0xFBCE_A83C_8A37_8BF1
        );
    }

    #[test]
    fn matches_the_sanity_check_of_the_reference_tool() {
        let buffer = sanity_buffer();
        let prime = 2_654_435_761;
        assert_eq!(xxh64(b"", prime), 0xAC75_FDA2_929B_17EF);
        assert_eq!(xxh64(&buffer[..1], 0), 0x4FCE_394C_C889_52D8);
        assert_eq!(xxh64(&buffer[..1], prime), 0x7398_40CB_819F_A723);
        assert_eq!(xxh64(&buffer[..14], 0), 0xCFFA_8DB8_81BC_3A3D);
        assert_eq!(xxh64(&buffer[..14], prime), 0x5B96_1158_5EFC_C9CB);
        assert_eq!(xxh64(&buffer, 0), 0x0EAB_5433_84F8_78AD);
        assert_eq!(xxh64(&buffer, prime), 0xCAA6_5939_306F_1E21);
    }

    #[test]
    fn reduce_stays_in_range() {
        for range in [1, 2, 3, 7, 1000, u64::MAX] {
            for hash in [0, 1, u64::MAX / 2, u64::MAX] {
                assert!(reduce(hash, range) < range);
            }
        }
        assert_eq!(reduce(u64::MAX, 10), 9);
        assert_eq!(reduce(0, 10), 0);
    }
}
