//! The one literal automaton of a rule set, and its search loop.
//!
//! Every literal is matched ASCII case-insensitively by one Aho-Corasick DFA, reporting
//! overlapping matches (two rules may share text). Most log lines hit no literal at all,
//! and a DFA walk is a chain of dependent table loads, one per byte. So the search first
//! picks the positions where a literal may start: the three bytes there begin some literal,
//! and unless a three-byte literal begins there, the four bytes there begin a longer one.
//! Those checks do not depend on each other, so the CPU runs them ahead; where it has AVX2
//! they run only at the positions a vector prefilter ([`super::teddy`]) picks, 32 at a
//! time, and elsewhere at every byte.
//!
//! From each position that passes, the DFA is walked anchored until it dies, and reports
//! the literals that start there. An anchored walk is as long as the literal prefix that
//! matches, where an unanchored one runs on until the automaton falls back to its start
//! state, and every step is a load that waits on the one before. The walk starts from the
//! state after the first three bytes, looked up in a table of every literal's first three
//! bytes ([`Prefixes`]); a position whose bytes are in no literal's prefix stops there.
//! The matches are the same set: every literal occurrence starts at a position the filters
//! pass.
//!
//! A rule set with a literal shorter than three bytes has no such filter: its DFA is walked
//! unanchored over every byte.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{AhoCorasick, Anchored, MatchKind, StartKind, dfa::DFA};

use super::teddy::{Teddy, WINDOW};

/// Bits in each filter: 4 KiB, so the three stay in L1 next to the DFA's start row.
const FILTER_BITS: usize = 1 << 15;

/// One compiled automaton over every literal.
#[derive(Debug)]
pub(crate) enum Scanner {
    /// The fast path, for literals of three bytes or more: an anchored DFA walked from
    /// each position the filters pass.
    Filtered {
        /// Boxed: the DFA's header is large, and there is one per rule set.
        dfa: Box<DFA>,
        /// The DFA's state after each literal's first three bytes.
        prefixes: Box<Prefixes>,
        /// Where literals can start.
        starts: Box<Starts>,
    },
    /// A DFA walked over every byte, for rule sets with a literal too short to filter on.
    Dfa(Box<DFA>),
    /// Very many literals can exceed the DFA's size limit; aho-corasick's own search has
    /// no such limit and is still one automaton.
    Nfa(AhoCorasick),
}

/// Hashed bit sets of where literals start; a false positive only costs a walk.
#[derive(Debug)]
pub(crate) struct Starts {
    /// Where the CPU has it, the vector prefilter that picks the positions to test.
    teddy: Option<Teddy>,
    /// The first three bytes of every literal.
    three: [u64; FILTER_BITS / 64],
    /// The three bytes of every three-byte literal.
    short: [u64; FILTER_BITS / 64],
    /// The first four bytes of every longer literal.
    four: [u64; FILTER_BITS / 64],
}

impl Starts {
    /// Filters for `literals`, each at least three bytes long.
    fn new(literals: &[Vec<u8>]) -> Box<Starts> {
        let mut s = Box::new(Starts {
            teddy: Teddy::new(literals),
            three: [0; FILTER_BITS / 64],
            short: [0; FILTER_BITS / 64],
            four: [0; FILTER_BITS / 64],
        });
        for l in literals {
            set(&mut s.three, key(l, 3));
            if l.len() == 3 {
                set(&mut s.short, key(l, 3));
            } else {
                set(&mut s.four, key(l, 4));
            }
        }
        s
    }

    /// Call `visit(j)` at every position `j` where a literal may start, in order: some
    /// literal's first three bytes are there, and it is a three-byte literal or the four
    /// bytes there begin a longer one.
    #[inline]
    fn for_each(&self, hay: &[u8], visit: impl FnMut(usize)) {
        match &self.teddy {
            Some(t) => t.for_each(hay, |w, bits| self.keep(w, bits), visit),
            None => self.each_byte(hay, visit),
        }
    }

    /// The exact test of [`Starts::for_each`] at each candidate of a vector block: the bits
    /// of `bits` whose position in `window` passes. Without a branch per candidate: most
    /// fail, some pass, and which is hard to predict. Past the end of the input the
    /// window holds zeros, which may let a four-byte test pass that should not; that only
    /// costs a walk.
    #[inline(always)]
    fn keep(&self, window: &[u8; WINDOW], mut bits: u32) -> u32 {
        let mut kept = 0;
        while bits != 0 {
            let j = bits.trailing_zeros();
            bits &= bits - 1;
            let Some(&four) = window[j as usize..].first_chunk::<4>() else {
                continue;
            };
            let w4 = u32::from_le_bytes(four);
            let k3 = hash(w4 & 0x00ff_ffff);
            let pass = bit(&self.three, k3) & (bit(&self.short, k3) | bit(&self.four, hash(w4)));
            kept |= pass << j;
        }
        kept
    }

    /// [`Starts::for_each`] a byte at a time, for CPUs without the vector prefilter.
    fn each_byte(&self, hay: &[u8], mut visit: impl FnMut(usize)) {
        let Some((&[a, b], tail)) = hay.split_first_chunk::<2>() else {
            return;
        };
        // The bytes at j, j + 1 and j + 2, little-endian, rolled one byte per position.
        let mut w = u32::from(a) | u32::from(b) << 8;
        for (j, &c) in tail.iter().enumerate() {
            w |= u32::from(c) << 16;
            let k = hash(w);
            if test(&self.three, k)
                && (test(&self.short, k)
                    || tail
                        .get(j + 1)
                        .is_some_and(|&d| test(&self.four, hash(w | u32::from(d) << 24))))
            {
                visit(j);
            }
            w >>= 8;
        }
    }
}

#[inline(always)]
fn set(bits: &mut [u64; FILTER_BITS / 64], k: usize) {
    bits[k / 64] |= 1 << (k % 64);
}

/// [`test`] as 0 or 1.
#[inline(always)]
fn bit(bits: &[u64; FILTER_BITS / 64], k: usize) -> u32 {
    (bits[k / 64] >> (k % 64)) as u32 & 1
}

#[inline(always)]
fn test(bits: &[u64; FILTER_BITS / 64], k: usize) -> bool {
    bits[k / 64] & (1 << (k % 64)) != 0
}

/// The filter's bit for up to four bytes, little-endian in `w` (zero where absent), folded
/// to lower case (other bytes fold too, which only lets a few more positions through).
#[inline(always)]
fn hash(w: u32) -> usize {
    ((w | 0x2020_2020).wrapping_mul(0x9E37_79B1) >> 17) as usize
}

/// [`hash`] of the first three (or four) bytes of a literal.
fn key(l: &[u8], len: usize) -> usize {
    hash(l[..len].iter().rev().fold(0, |w, &b| w << 8 | u32::from(b)))
}

impl Scanner {
    /// Build over `literals` (already ASCII lower-cased).
    ///
    /// The DFAs are built case-sensitive and fed the input lower-cased a byte at a time.
    /// Matching is the same as aho-corasick's ASCII case folding, but upper-case letters
    /// then share one byte class with the other bytes no literal uses, which halves the
    /// alphabet and so the table: the shipped rules' DFA shrinks from 0.99 MB to 0.50 MB,
    /// into L2. Folding the byte does not lengthen the walk's chain of dependent loads.
    pub(crate) fn build(literals: &[Vec<u8>]) -> Result<Scanner, aho_corasick::BuildError> {
        debug_assert!(
            literals
                .iter()
                .all(|l| !l.iter().any(u8::is_ascii_uppercase))
        );
        if literals.iter().all(|l| l.len() >= 3) {
            let built = DFA::builder()
                .start_kind(StartKind::Anchored)
                .match_kind(MatchKind::Standard)
                .build(literals);
            if let Ok(dfa) = built
                && let Some(prefixes) = Prefixes::new(&dfa, literals)
            {
                return Ok(Scanner::Filtered {
                    dfa: Box::new(dfa),
                    prefixes,
                    starts: Starts::new(literals),
                });
            }
        }
        match DFA::builder()
            .match_kind(MatchKind::Standard)
            .build(literals)
        {
            Ok(dfa) => Ok(Scanner::Dfa(Box::new(dfa))),
            Err(_) => AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(literals)
                .map(Scanner::Nfa),
        }
    }

    /// Call `f(pattern, start, end)` for every (overlapping) literal match in `hay`. The
    /// order is unspecified: the filtered search reports by start, the others by end.
    #[inline]
    pub(crate) fn for_each(&self, hay: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        match self {
            Scanner::Filtered {
                dfa,
                prefixes,
                starts,
            } => {
                starts.for_each(
                    hay,
                    #[inline(always)]
                    |j| walk_anchored(dfa, prefixes, hay, j, &mut f),
                );
            }
            Scanner::Dfa(dfa) => {
                // An unanchored search always has a start state.
                let Ok(mut sid) = dfa.start_state(Anchored::No) else {
                    return;
                };
                for (i, &b) in hay.iter().enumerate() {
                    sid = dfa.next_state(Anchored::No, sid, b.to_ascii_lowercase());
                    if dfa.is_special(sid) && dfa.is_match(sid) {
                        for m in 0..dfa.match_len(sid) {
                            let p = dfa.match_pattern(sid, m);
                            f(p.as_usize(), i + 1 - dfa.pattern_len(p), i + 1);
                        }
                    }
                }
            }
            Scanner::Nfa(ac) => {
                for m in ac.find_overlapping_iter(hay) {
                    f(m.pattern().as_usize(), m.start(), m.end());
                }
            }
        }
    }
}

/// The DFA's anchored state after the first three bytes of every literal, in a table
/// hashed without collisions: the walk's first three DFA loads, each waiting on the one
/// before, become one table load that waits on nothing, and a position whose three bytes
/// begin no literal is dismissed without touching the DFA. A cache of the one automaton's transitions, not a
/// second matcher: every match is still a DFA match state.
#[derive(Debug)]
pub(crate) struct Prefixes {
    /// Odd multiplier of the hash.
    mul: u32,
    /// Right shift of the hash: 32 less the table's bits.
    shift: u32,
    /// (three lower-case bytes little-endian, state after them); empty slots hold
    /// [`Prefixes::EMPTY`], which no three bytes equal.
    slots: Box<[(u32, StateID)]>,
}

impl Prefixes {
    const EMPTY: u32 = u32::MAX;

    /// The table for `literals` (lower-cased, each at least three bytes), or `None` if the
    /// DFA has no anchored start.
    fn new(dfa: &DFA, literals: &[Vec<u8>]) -> Option<Box<Prefixes>> {
        let start = dfa.start_state(Anchored::Yes).ok()?;
        let mut keys: Vec<(u32, StateID)> = literals
            .iter()
            .map(|l| {
                let sid = l[..3]
                    .iter()
                    .fold(start, |sid, &b| dfa.next_state(Anchored::Yes, sid, b));
                (u32::from_le_bytes([l[0], l[1], l[2], 0]), sid)
            })
            .collect();
        keys.sort_unstable_by_key(|k| k.0);
        keys.dedup_by_key(|k| k.0);
        // At most a quarter full, then a multiplier that separates every key: a few
        // hundred prefixes find one within a few tries.
        let mut bits = (keys.len() * 4).next_power_of_two().trailing_zeros().max(6);
        let mut x: u32 = 0x9E37_79B9;
        loop {
            for _ in 0..64 {
                // xorshift32, made odd.
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let mul = x | 1;
                let shift = 32 - bits;
                let mut slots = vec![(Self::EMPTY, start); 1 << bits].into_boxed_slice();
                let placed = keys.iter().all(|&(k, sid)| {
                    let slot = &mut slots[(k.wrapping_mul(mul) >> shift) as usize];
                    let free = slot.0 == Self::EMPTY;
                    *slot = (k, sid);
                    free
                });
                if placed {
                    return Some(Box::new(Prefixes { mul, shift, slots }));
                }
            }
            bits += 1;
        }
    }

    /// The state after the three bytes little-endian in `w` (the high byte ignored), if
    /// they begin a literal.
    #[inline(always)]
    fn state(&self, w: u32) -> Option<StateID> {
        let k = lower(w & 0x00ff_ffff);
        let (key, sid) = self.slots[(k.wrapping_mul(self.mul) >> self.shift) as usize];
        (key == k).then_some(sid)
    }
}

/// ASCII lower case of four bytes at once (`u8::to_ascii_lowercase` on each).
#[inline(always)]
fn lower(w: u32) -> u32 {
    let seven = w & 0x7f7f_7f7f;
    // The top bit of each byte: set from 'A' up, and from past 'Z' up.
    let from_a = seven.wrapping_add(0x3f3f_3f3f);
    let past_z = seven.wrapping_add(0x2525_2525);
    let upper = from_a & !past_z & !w & 0x8080_8080;
    w | upper >> 2
}

/// Report the literals that start at `j`: from the state after the three bytes there,
/// walk the DFA until it dies. A match state may also list literals that are suffixes of
/// its path (the automaton copies them in for unanchored searches); those start later and
/// are reported from their own position, so only a literal as long as the path counts
/// here.
#[inline(always)]
fn walk_anchored(
    dfa: &DFA,
    prefixes: &Prefixes,
    hay: &[u8],
    j: usize,
    f: &mut impl FnMut(usize, usize, usize),
) {
    let Some(&[a, b, c]) = hay.get(j..).and_then(|h| h.first_chunk::<3>()) else {
        return;
    };
    let Some(mut sid) = prefixes.state(u32::from_le_bytes([a, b, c, 0])) else {
        return;
    };
    let mut len = 3;
    loop {
        if dfa.is_special(sid) {
            if dfa.is_dead(sid) {
                return;
            }
            if dfa.is_match(sid) {
                for m in 0..dfa.match_len(sid) {
                    let p = dfa.match_pattern(sid, m);
                    if dfa.pattern_len(p) == len {
                        f(p.as_usize(), j, j + len);
                    }
                }
            }
        }
        let Some(&b) = hay.get(j + len) else {
            return;
        };
        sid = dfa.next_state(Anchored::Yes, sid, b.to_ascii_lowercase());
        len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: aho-corasick's own overlapping search over the same literals.
    fn reference(literals: &[Vec<u8>]) -> AhoCorasick {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(literals)
            .expect("reference automaton")
    }

    /// Every match of `ac` in `hay`, as (pattern, start, end).
    fn matches(ac: &AhoCorasick, hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut out: Vec<_> = ac
            .find_overlapping_iter(hay)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect();
        out.sort_by_key(|&(p, a, b)| (b, std::cmp::Reverse(a), p));
        out
    }

    /// The same scanner with the byte-at-a-time filter, as on a CPU without the vector one.
    fn bytewise(s: Scanner) -> Scanner {
        match s {
            Scanner::Filtered {
                dfa,
                prefixes,
                mut starts,
            } => {
                starts.teddy = None;
                Scanner::Filtered {
                    dfa,
                    prefixes,
                    starts,
                }
            }
            other => other,
        }
    }

    /// Every match the scanner reports, sorted like the reference: by end, then start.
    fn scan(s: &Scanner, hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        s.for_each(hay, |p, a, b| out.push((p, a, b)));
        out.sort_by_key(|&(p, a, b)| (b, std::cmp::Reverse(a), p));
        out
    }

    /// A haystack drawn mostly from the literals' own bytes in both cases, so that
    /// partial matches, overlaps and matches at both ends are common.
    fn haystacks(literals: &[Vec<u8>], seed: u64) -> impl Iterator<Item = Vec<u8>> {
        let mut alphabet: Vec<u8> = literals.iter().flatten().copied().collect();
        alphabet.extend_from_slice(b" .:=\t\xc3\xa9\x00Z");
        let mut x = seed;
        let mut next = move || {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Lengths below, at and past the vector filter's 35-byte window.
        (0..3000).map(move |_| {
            let len = (next() % 110) as usize;
            let mut h = Vec::with_capacity(len);
            while h.len() < len {
                if next() % 5 == 0 {
                    let l = &literals[(next() % literals.len() as u64) as usize];
                    h.extend(l.iter().map(|b| {
                        if next() % 2 == 0 {
                            b.to_ascii_uppercase()
                        } else {
                            *b
                        }
                    }));
                } else {
                    h.push(alphabet[(next() % alphabet.len() as u64) as usize]);
                }
            }
            h
        })
    }

    fn lits(words: &[&str]) -> Vec<Vec<u8>> {
        words.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn the_filtered_walk_finds_exactly_the_reference_matches() {
        let literals = lits(&[
            "error",
            "err",
            "error:",
            "rror",
            "timeout",
            "time",
            "404",
            "4040",
            "tls: ",
            "eio",
            "connection refused",
            "refused",
            "a.b",
        ]);
        let s = Scanner::build(&literals).expect("scanner");
        #[cfg(target_arch = "x86_64")]
        assert!(
            matches!(&s, Scanner::Filtered { starts, .. } if starts.teddy.is_some()),
            "the vector filter is built where the CPU has AVX2"
        );
        let each = bytewise(Scanner::build(&literals).expect("scanner"));
        let ac = reference(&literals);
        let mut compared = 0;
        for hay in haystacks(&literals, 0x9e37_79b9_7f4a_7c15) {
            let want = matches(&ac, &hay);
            compared += want.len();
            for s in [&s, &each] {
                assert_eq!(
                    scan(s, &hay),
                    want,
                    "haystack {:?}",
                    String::from_utf8_lossy(&hay)
                );
            }
        }
        assert!(
            compared > 1000,
            "the haystacks exercised only {compared} matches"
        );
    }

    #[test]
    fn four_bytes_lower_case_like_each_byte() {
        for b in 0..=255u8 {
            let w = u32::from_le_bytes([b, b'Q', b, 0xC9]);
            let want =
                u32::from_le_bytes([b.to_ascii_lowercase(), b'q', b.to_ascii_lowercase(), 0xC9]);
            assert_eq!(lower(w), want, "byte {b:#x}");
        }
    }

    #[test]
    fn every_literal_prefix_has_its_own_slot() {
        // Many prefixes that differ in one byte, so a weak hash would collide.
        let literals: Vec<Vec<u8>> = (0..600u32)
            .map(|i| format!("{}{}x{}", (b'a' + (i % 26) as u8) as char, i / 26, i).into_bytes())
            .filter(|l| l.len() >= 3)
            .collect();
        let Ok(Scanner::Filtered { prefixes, .. }) = Scanner::build(&literals) else {
            panic!("a filtered scanner");
        };
        for l in &literals {
            let w = u32::from_le_bytes([l[0].to_ascii_uppercase(), l[1], l[2], b'!']);
            assert!(
                prefixes.state(w).is_some(),
                "{:?}",
                String::from_utf8_lossy(l)
            );
        }
        assert!(prefixes.state(u32::from_le_bytes(*b"zzz ")).is_none());
    }

    #[test]
    fn a_literal_inside_a_longer_one_is_reported_once_from_its_own_start() {
        // The DFA's state for "xerror" also lists "error" and "rror", copied in for the
        // unanchored search; the anchored walk from 0 must not report them.
        let literals = lits(&["xerror", "error", "rror"]);
        for s in [
            Scanner::build(&literals).expect("scanner"),
            bytewise(Scanner::build(&literals).expect("scanner")),
        ] {
            assert!(matches!(&s, Scanner::Filtered { .. }));
            assert_eq!(scan(&s, b"XERRORS"), vec![(2, 2, 6), (1, 1, 6), (0, 0, 6)]);
        }
    }

    #[test]
    fn short_literals_turn_the_filter_off_and_still_match() {
        let literals = lits(&["ok", "x", "oops"]);
        let s = Scanner::build(&literals).expect("scanner");
        assert!(matches!(&s, Scanner::Dfa(_)));
        let ac = reference(&literals);
        for hay in haystacks(&literals, 7) {
            assert_eq!(scan(&s, &hay), matches(&ac, &hay));
        }
        assert_eq!(scan(&s, b"X"), vec![(1, 0, 1)]);
    }

    #[test]
    fn matches_at_the_very_end_and_in_upper_case_are_found() {
        let literals = lits(&["panic", "oom"]);
        for s in [
            Scanner::build(&literals).expect("scanner"),
            bytewise(Scanner::build(&literals).expect("scanner")),
        ] {
            assert_eq!(scan(&s, b"kernel PANIC"), vec![(0, 7, 12)]);
            assert_eq!(scan(&s, b"OOM"), vec![(1, 0, 3)]);
            assert_eq!(scan(&s, b"oo"), vec![]);
            // The last block overlaps the one before it: a match in the overlap counts once.
            let long = format!("{}panic {}OOM", "x".repeat(40), "y".repeat(30));
            assert_eq!(scan(&s, long.as_bytes()), vec![(0, 40, 45), (1, 76, 79)]);
        }
    }
}
