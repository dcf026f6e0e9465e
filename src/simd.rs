//! Byte-set membership as bitmasks, 32 bytes per step: AVX2 where the CPU has it, a byte
//! at a time elsewhere, with the same results. A per-byte loop over a short span (a log
//! header) turns into bit scans over these masks. Also the AVX2 check and the safe
//! unaligned load that every vector path here shares.
//!
//! A set of ASCII bytes is two 16-entry tables: the low nibble's table holds, for each
//! high nibble 0–7, whether that byte is in the set; the high nibble's table holds the
//! nibble's own bit. A byte is a member when the two lookups share a bit, which one
//! shuffle each computes for 32 bytes at once. Bytes from 0x80 up are never members.

/// A set of ASCII bytes.
#[derive(Debug, Clone)]
pub struct ByteSet {
    /// Low-nibble table then high-nibble table, each repeated in both 128-bit lanes.
    tables: [[u8; 32]; 2],
    /// Membership, for the byte-at-a-time path.
    members: [bool; 256],
}

impl ByteSet {
    /// The set of `members`; bytes from 0x80 up are ignored.
    pub const fn new(members: &[u8]) -> ByteSet {
        let mut tables = [[0u8; 32]; 2];
        let mut set = [false; 256];
        let mut i = 0;
        while i < members.len() {
            let c = members[i];
            i += 1;
            if !c.is_ascii() {
                continue;
            }
            set[c as usize] = true;
            let (lo, hi) = ((c & 15) as usize, (c >> 4) as usize);
            tables[0][lo] |= 1 << hi;
            tables[0][16 + lo] |= 1 << hi;
            tables[1][hi] = 1 << hi;
            tables[1][16 + hi] = 1 << hi;
        }
        ByteSet {
            tables,
            members: set,
        }
    }

    /// Whether `c` is a member.
    #[inline(always)]
    pub fn contains(&self, c: u8) -> bool {
        self.members[usize::from(c)]
    }

    /// Membership bits of the first `64 * N` bytes of `hay` (bit `j % 64` of word `j / 64`
    /// for `hay[j]`); bits past the end of `hay` are clear.
    #[inline]
    pub fn masks<const N: usize>(&self, hay: &[u8]) -> [u64; N] {
        #[cfg(target_arch = "x86_64")]
        if avx2_available() {
            // SAFETY: the CPU was just found to have AVX2.
            #[allow(unsafe_code)]
            return unsafe { avx2::masks(&self.tables, hay) };
        }
        self.masks_each(hay)
    }

    /// Whether any byte of `hay` is a member.
    #[inline]
    pub fn any_in(&self, hay: &[u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if avx2_available() {
            // SAFETY: the CPU was just found to have AVX2.
            #[allow(unsafe_code)]
            return unsafe { avx2::any_in(&self.tables, hay) };
        }
        hay.iter().any(|&c| self.contains(c))
    }

    /// [`ByteSet::masks`] a byte at a time.
    fn masks_each<const N: usize>(&self, hay: &[u8]) -> [u64; N] {
        let mut out = [0u64; N];
        for (j, &c) in hay.iter().take(64 * N).enumerate() {
            out[j / 64] |= u64::from(self.contains(c)) << (j % 64);
        }
        out
    }
}

/// The first position from `from` whose bit in `masks` is `bit`, or `masks`' length in
/// bits when there is none.
#[inline]
pub fn next_bit<const N: usize>(masks: &[u64; N], from: usize, bit: bool) -> usize {
    let mut k = from / 64;
    if k >= N {
        return 64 * N;
    }
    let flip = if bit { 0 } else { u64::MAX };
    let mut w = (masks[k] ^ flip) & (u64::MAX << (from % 64));
    loop {
        if w != 0 {
            return 64 * k + w.trailing_zeros() as usize;
        }
        k += 1;
        if k == N {
            return 64 * N;
        }
        w = masks[k] ^ flip;
    }
}

/// Whether the CPU has AVX2: the condition for calling any `#[target_feature(enable =
/// "avx2")]` function. The answer is cached by the standard library.
#[cfg(target_arch = "x86_64")]
pub fn avx2_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

/// Whether the CPU has AVX2: never, off x86_64.
#[cfg(not(target_arch = "x86_64"))]
pub fn avx2_available() -> bool {
    false
}

/// Unaligned load of the first 32 bytes of `bytes`, without a raw pointer.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn load256(bytes: &[u8]) -> std::arch::x86_64::__m256i {
    bytemuck::pod_read_unaligned(&bytes[..32])
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::load256 as load;
    use std::arch::x86_64::*;

    /// Per-byte membership of 32 bytes: a byte is a member when its two nibble lookups
    /// share a bit.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn members(tables: &[__m256i; 2], v: __m256i) -> __m256i {
        let nibble = _mm256_set1_epi8(0x0f);
        let lo = _mm256_and_si256(v, nibble);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble);
        _mm256_and_si256(
            _mm256_shuffle_epi8(tables[0], lo),
            _mm256_shuffle_epi8(tables[1], hi),
        )
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn any_in(tables: &[[u8; 32]; 2], hay: &[u8]) -> bool {
        let t = [load(&tables[0]), load(&tables[1])];
        let n = hay.len();
        if n < 32 {
            // A zeroed copy; the padding's bytes are masked off the result.
            let mut pad = [0u8; 32];
            pad[..n].copy_from_slice(hay);
            let none = _mm256_cmpeq_epi8(members(&t, load(&pad)), _mm256_setzero_si256());
            let hits = !(_mm256_movemask_epi8(none) as u32);
            return hits & ((1u32 << n) - 1) != 0;
        }
        let mut acc = _mm256_setzero_si256();
        let mut j = 0;
        while j + 32 <= n {
            acc = _mm256_or_si256(acc, members(&t, load(&hay[j..])));
            j += 32;
        }
        if j < n {
            // The last 32 bytes again: overlap does not change an "any".
            acc = _mm256_or_si256(acc, members(&t, load(&hay[n - 32..])));
        }
        _mm256_testz_si256(acc, acc) == 0
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn masks<const N: usize>(tables: &[[u8; 32]; 2], hay: &[u8]) -> [u64; N] {
        let t = [load(&tables[0]), load(&tables[1])];
        let block = |v: __m256i| -> u64 {
            let none = _mm256_cmpeq_epi8(members(&t, v), _mm256_setzero_si256());
            u64::from(!(_mm256_movemask_epi8(none) as u32))
        };
        let mut out = [0u64; N];
        let n = hay.len().min(64 * N);
        let mut j = 0;
        while j + 32 <= n {
            out[j / 64] |= block(load(&hay[j..])) << (j % 64);
            j += 32;
        }
        if j < n {
            // The tail through a zeroed copy; its padding bits are cleared below.
            let mut pad = [0u8; 32];
            pad[..n - j].copy_from_slice(&hay[j..n]);
            let keep = (1u64 << (n - j)) - 1;
            out[j / 64] |= (block(load(&pad)) & keep) << (j % 64);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEPS: ByteSet = ByteSet::new(b" \t[]()<>|,\0");

    fn hay(seed: &mut u64, len: usize) -> Vec<u8> {
        let alphabet = b"ab \t[]()<>|,:=\0\x7f\x80\xff0";
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                alphabet[(*seed % alphabet.len() as u64) as usize]
            })
            .collect()
    }

    #[test]
    fn any_in_agrees_with_membership_at_every_length() {
        let mut seed = 0x2545_f491_4f6c_dd1d;
        for len in 0..=200 {
            let h = hay(&mut seed, len);
            let each = h.iter().any(|&c| SEPS.contains(c));
            assert_eq!(SEPS.any_in(&h), each, "len {len}");
            // One member at each position of a hay with none: the vector path must see it
            // wherever it falls, the overlapping tail included.
            let plain = vec![b'a'; len];
            assert!(!SEPS.any_in(&plain), "len {len} without members");
            for j in 0..len {
                let mut one = plain.clone();
                one[j] = b'|';
                assert!(SEPS.any_in(&one), "len {len} member at {j}");
            }
        }
    }

    #[test]
    fn masks_agree_with_membership_at_every_length() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for len in 0..=200 {
            let h = hay(&mut seed, len);
            let fast: [u64; 3] = SEPS.masks(&h);
            let each: [u64; 3] = SEPS.masks_each(&h);
            assert_eq!(fast, each, "len {len}");
            for (j, &c) in h.iter().take(192).enumerate() {
                let bit = fast[j / 64] >> (j % 64) & 1 == 1;
                let expect = matches!(c, b' ' | b'\t' | b'[' | b']' | b'(' | b')' | b'<')
                    || matches!(c, b'>' | b'|' | b',' | 0);
                assert_eq!(bit, expect, "len {len} byte {j} ({c:#x})");
            }
            for j in h.len()..192 {
                assert_eq!(
                    fast[j / 64] >> (j % 64) & 1,
                    0,
                    "padding bit {j} of len {len}"
                );
            }
        }
    }

    #[test]
    fn next_bit_finds_the_first_set_or_clear_bit() {
        let masks = [0b1011_0000u64, 0, 1 << 63];
        assert_eq!(next_bit(&masks, 0, true), 4);
        assert_eq!(next_bit(&masks, 5, true), 5);
        assert_eq!(next_bit(&masks, 6, true), 7);
        assert_eq!(next_bit(&masks, 8, true), 191);
        assert_eq!(next_bit(&masks, 192, true), 192);
        assert_eq!(next_bit(&masks, 4, false), 6);
        assert_eq!(next_bit(&[u64::MAX; 2], 3, false), 128);
        assert_eq!(next_bit(&[u64::MAX, 1], 3, false), 65);
    }
}
