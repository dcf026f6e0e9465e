//! A vector prefilter for where literals may start, 32 positions at a time: the shuffle
//! trick of Hyperscan's Teddy (and aho-corasick's packed searcher), sized for a rule set.
//!
//! Each literal's first four bytes (three for a three-byte literal), folded like the scalar
//! filter (`| 0x20`), go into one of eight buckets. For each of the four offsets, two
//! 16-entry tables map a byte's low and high nibble to the buckets that allow it there; a
//! three-byte literal's bucket allows every byte at the fourth offset. A position is a
//! candidate when some bucket allows all eight nibbles. That is a superset of the
//! positions where a literal's first bytes are (in any ASCII case), so the exact filter
//! only has to look at the candidates. aho-corasick's own Teddy caps at 128 prefixes and
//! searches for whole matches; a rule set has more, and only the start positions are
//! wanted here.
//!
//! Buckets are filled a group at a time (the prefixes that share a first byte and a
//! length class), each group where it widens the bucket's accepted nibble sets least.
//! Three-byte literals form groups of their own, and a bucket that takes one allows every
//! fourth byte, which that measure counts; so they end up sharing buckets with each other
//! rather than opening up the fourth offset of the longer ones.

use crate::simd::avx2_available;

/// Buckets: the bits of one table byte.
const BUCKETS: usize = 8;

/// The shuffle tables: per offset, the low-nibble table then the high-nibble one, each
/// repeated in both 128-bit lanes (a shuffle looks up within its own lane).
#[derive(Debug, Clone)]
pub(crate) struct Teddy {
    tables: [[u8; 32]; 2 * OFFSETS],
}

/// Offsets a position is checked at.
const OFFSETS: usize = 4;
/// The bytes a block of 32 positions reads.
pub(crate) const WINDOW: usize = 32 + OFFSETS - 1;

/// The folded first bytes of a literal: four, or three and any byte for a three-byte one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Prefix {
    short: bool,
    bytes: [u8; OFFSETS],
}

impl Prefix {
    /// The low- and high-nibble sets this prefix allows at offset `k`.
    fn nibbles(&self, k: usize) -> (u16, u16) {
        if self.short && k == 3 {
            return (u16::MAX, u16::MAX);
        }
        let c = self.bytes[k];
        (1 << (c & 15), 1 << (c >> 4))
    }
}

impl Teddy {
    /// Tables for `literals` (each at least three bytes), or `None` when this CPU cannot
    /// run them.
    pub(crate) fn new(literals: &[Vec<u8>]) -> Option<Teddy> {
        if !avx2_available() {
            return None;
        }
        Some(Teddy::build(literals))
    }

    fn build(literals: &[Vec<u8>]) -> Teddy {
        let mut prefixes: Vec<Prefix> = literals
            .iter()
            .map(|l| Prefix {
                short: l.len() < OFFSETS,
                bytes: std::array::from_fn(|k| l.get(k).map_or(0, |c| c | 0x20)),
            })
            .collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        // Groups by length class and first byte, largest first: a bucket holding one first
        // byte keeps its offset-0 tables tight.
        let mut groups: Vec<&[Prefix]> = prefixes
            .chunk_by(|a, b| (a.short, a.bytes[0]) == (b.short, b.bytes[0]))
            .collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
        let mut buckets: Vec<Vec<Prefix>> = vec![Vec::new(); BUCKETS];
        for g in groups {
            let best = (0..BUCKETS)
                .min_by_key(|&b| {
                    let before = breadth(&buckets[b]);
                    let mut with = buckets[b].clone();
                    with.extend_from_slice(g);
                    (breadth(&with) - before, buckets[b].len())
                })
                .unwrap_or(0);
            buckets[best].extend_from_slice(g);
        }
        let mut tables = [[0u8; 32]; 2 * OFFSETS];
        for (b, bucket) in buckets.iter().enumerate() {
            for p in bucket {
                for k in 0..OFFSETS {
                    let (lo, hi) = p.nibbles(k);
                    for nib in 0..16 {
                        for lane in [0, 16] {
                            if lo & 1 << nib != 0 {
                                tables[2 * k][lane + nib] |= 1 << b;
                            }
                            if hi & 1 << nib != 0 {
                                tables[2 * k + 1][lane + nib] |= 1 << b;
                            }
                        }
                    }
                }
            }
        }
        Teddy { tables }
    }

    /// Call `visit` at every candidate position (with three bytes in `hay`) that `keep`
    /// keeps, in order. `keep(window, bits)` gets a block's window (`hay` from the block's
    /// first position, zero-padded past its end) and its candidates as bits, and returns the
    /// bits to visit: the exact filter, run over a whole block before any visit so that its
    /// outcome is data, not a branch per candidate.
    #[inline]
    pub(crate) fn for_each(
        &self,
        hay: &[u8],
        keep: impl Fn(&[u8; WINDOW], u32) -> u32,
        visit: impl FnMut(usize),
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: a `Teddy` exists only where `avx2_available()` found AVX2 (`new`), or in
            // tests that check it first.
            #[allow(unsafe_code)]
            unsafe {
                avx2::for_each(&self.tables, hay, keep, visit)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            blocks(hay, visit, |w| keep(w, scalar_block(&self.tables, w)))
        }
    }
}

/// The block loop of [`Teddy::for_each`], over any block function. The last block is
/// copied into a zero-padded window: a three-byte literal may start three bytes from the
/// end, where the fourth offset reads past it (its bucket allows any byte there), and
/// positions without three bytes of their own are not looked at.
#[inline(always)]
fn blocks(hay: &[u8], mut visit: impl FnMut(usize), block: impl Fn(&[u8; WINDOW]) -> u32) {
    let n = hay.len();
    let mut at = 0;
    while at + 2 < n {
        let mut bits = match hay.get(at..at + WINDOW) {
            Some(w) => match w.try_into() {
                Ok(w) => block(w),
                Err(_) => return,
            },
            None => {
                let mut w = [0u8; WINDOW];
                w[..n - at].copy_from_slice(&hay[at..]);
                block(&w) & (u32::MAX >> (32 - (n - at - 2)))
            }
        };
        while bits != 0 {
            visit(at + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
        at += 32;
    }
}

/// How many four-byte strings a bucket accepts: the product of its nibble sets' sizes.
fn breadth(bucket: &[Prefix]) -> u64 {
    if bucket.is_empty() {
        return 0;
    }
    (0..OFFSETS)
        .map(|k| {
            let (lo, hi) = bucket.iter().fold((0u16, 0u16), |(lo, hi), p| {
                let (l, h) = p.nibbles(k);
                (lo | l, hi | h)
            });
            u64::from(lo.count_ones() * hi.count_ones())
        })
        .product()
}

/// The same function as the vector one, a byte at a time: the reference in tests.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn scalar_block(tables: &[[u8; 32]; 2 * OFFSETS], window: &[u8; WINDOW]) -> u32 {
    let mut bits = 0;
    for j in 0..32 {
        let mut m = 0xff;
        for k in 0..OFFSETS {
            let c = window[j + k] | 0x20;
            m &= tables[2 * k][usize::from(c & 15)] & tables[2 * k + 1][usize::from(c >> 4)];
        }
        if m != 0 {
            bits |= 1 << j;
        }
    }
    bits
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{OFFSETS, WINDOW};
    use crate::simd::load256 as load;
    use std::arch::x86_64::*;

    /// [`super::blocks`] with the vector block, compiled for AVX2 as a whole so the
    /// tables stay in registers across blocks.
    #[target_feature(enable = "avx2")]
    pub(super) fn for_each(
        tables: &[[u8; 32]; 2 * OFFSETS],
        hay: &[u8],
        keep: impl Fn(&[u8; WINDOW], u32) -> u32,
        visit: impl FnMut(usize),
    ) {
        let t: [__m256i; 2 * OFFSETS] = std::array::from_fn(|i| load(&tables[i]));
        super::blocks(hay, visit, |w| keep(w, block(&t, w)))
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn block(t: &[__m256i; 2 * OFFSETS], window: &[u8; WINDOW]) -> u32 {
        let fold = _mm256_set1_epi8(0x20);
        let nibble = _mm256_set1_epi8(0x0f);
        let mut any = _mm256_set1_epi8(-1);
        for k in 0..OFFSETS {
            let v = _mm256_or_si256(load(&window[k..]), fold);
            let lo = _mm256_and_si256(v, nibble);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble);
            let m = _mm256_and_si256(
                _mm256_shuffle_epi8(t[2 * k], lo),
                _mm256_shuffle_epi8(t[2 * k + 1], hi),
            );
            any = _mm256_and_si256(any, m);
        }
        let none = _mm256_cmpeq_epi8(any, _mm256_setzero_si256());
        !(_mm256_movemask_epi8(none) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(seed: &mut u64, alphabet: &[u8]) -> [u8; WINDOW] {
        let mut w = [0u8; WINDOW];
        for b in &mut w {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *b = alphabet[(*seed % alphabet.len() as u64) as usize];
        }
        w
    }

    #[test]
    fn every_literal_start_is_a_candidate_in_any_case() {
        let literals: Vec<Vec<u8>> = ["error", "exception", "404", "503", "tls: ", "no space"]
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect();
        let t = Teddy::build(&literals);
        for l in &literals {
            for upper in [false, true] {
                for at in [0, 7, 31] {
                    let mut w = [b'#'; WINDOW];
                    for (i, &c) in l.iter().take(OFFSETS).enumerate() {
                        w[at + i] = if upper { c.to_ascii_uppercase() } else { c };
                    }
                    assert_ne!(scalar_block(&t.tables, &w) & 1 << at, 0, "{l:?} at {at}");
                }
            }
        }
        // The fourth byte counts for literals longer than three: `err` then `#` begins none.
        let mut w = [b'#'; WINDOW];
        w[..3].copy_from_slice(b"ERR");
        assert_eq!(scalar_block(&t.tables, &w) & 1, 0);
        // Nothing at all in a window of bytes no literal begins with.
        assert_eq!(scalar_block(&t.tables, &[b'#'; WINDOW]), 0);
    }

    #[cfg(target_arch = "x86_64")]
    fn avx2_block(t: &Teddy, w: &[u8; WINDOW]) -> u32 {
        use std::arch::x86_64::__m256i;
        let tables: [__m256i; 2 * OFFSETS] =
            std::array::from_fn(|i| bytemuck::pod_read_unaligned(&t.tables[i][..]));
        // SAFETY: the caller asserted AVX2.
        #[allow(unsafe_code)]
        unsafe {
            avx2::block(&tables, w)
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_vector_block_equals_the_scalar_one() {
        assert!(
            avx2_available(),
            "this CPU has no AVX2: the vector block is not exercised"
        );
        let literals: Vec<Vec<u8>> = ["error", "err", "404", "4040", "timeout", "eio"]
            .iter()
            .map(|l| l.as_bytes().to_vec())
            .collect();
        let t = Teddy::build(&literals);
        let alphabet: Vec<u8> = b"errorERRO4040timeuTIMEio \x00\xff\xc3\xa9:=Z".to_vec();
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let mut candidates = 0;
        for _ in 0..20_000 {
            let w = window(&mut seed, &alphabet);
            let want = scalar_block(&t.tables, &w);
            candidates += want.count_ones();
            let got = avx2_block(&t, &w);
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&w));
        }
        assert!(candidates > 2_000, "only {candidates} candidates exercised");
    }
}
