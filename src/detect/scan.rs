//! The one literal automaton of a rule set, and its search loop.
//!
//! Every literal is matched ASCII case-insensitively by one Aho-Corasick DFA, reporting
//! overlapping matches (two rules may share text). Most log lines hit no literal at all,
//! and a DFA walk is a chain of dependent table loads, one per byte. So while the walk is in
//! the start state, where no match is in progress, a byte position is skipped unless the
//! three bytes there begin some literal: those checks do not depend on each other, so the
//! CPU runs them ahead. Common words begin many literals' first three bytes (`con`, `loc`,
//! `sta`), so a position that passes is checked once more on its first four bytes unless a
//! three-byte literal begins there; about a third of the walks that the three-byte check
//! alone would start are skipped that way. Where the CPU has AVX2, those checks run only
//! at the positions a vector prefilter ([`super::teddy`]) picks, 32 at a time; elsewhere
//! they run at every byte. Skipping a position where no match can start, from the start
//! state, leaves the start state: the matches found are exactly the automaton's own.

use aho_corasick::automaton::Automaton;
use aho_corasick::{AhoCorasick, Anchored, MatchKind, dfa::DFA};

use super::teddy::Teddy;

/// Bits in each filter: 4 KiB, so the three stay in L1 next to the DFA's start row.
const FILTER_BITS: usize = 1 << 15;

/// One compiled automaton over every literal.
#[derive(Debug)]
pub(crate) enum Scanner {
    /// The fast path: a DFA walked by [`Scanner::for_each`] itself.
    Dfa {
        /// Boxed: the DFA's header is large, and there is one per rule set.
        dfa: Box<DFA>,
        /// Where literals can start; `None` when a literal is shorter than three bytes.
        starts: Option<Box<Starts>>,
    },
    /// Very many literals can exceed the DFA's size limit; the contiguous NFA has no such
    /// limit and is still one automaton.
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
    fn new(literals: &[Vec<u8>]) -> Option<Box<Starts>> {
        if literals.iter().any(|l| l.len() < 3) {
            return None;
        }
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
        Some(s)
    }

    /// The first position from `from` where a literal may start: some literal's first
    /// three bytes are there, and it is a three-byte literal or the four bytes there begin
    /// a longer one. Kept out of line: inlined into the walk, its loop ran out of
    /// registers and took twice the instructions per byte.
    #[inline(never)]
    fn next(&self, hay: &[u8], from: usize) -> Option<usize> {
        match &self.teddy {
            Some(t) => t.find(hay, from, |j| self.starts_at(hay, j)),
            None => self.next_each(hay, from),
        }
    }

    /// The exact test of [`Starts::next`] at `j` (which has three bytes).
    #[inline(always)]
    fn starts_at(&self, hay: &[u8], j: usize) -> bool {
        let Some(&[a, b, c]) = hay.get(j..j + 3) else {
            return false;
        };
        let w = u32::from(a) | u32::from(b) << 8 | u32::from(c) << 16;
        let k = hash(w);
        test(&self.three, k)
            && (test(&self.short, k)
                || hay
                    .get(j + 3)
                    .is_some_and(|&d| test(&self.four, hash(w | u32::from(d) << 24))))
    }

    /// [`Starts::next`] a byte at a time, for CPUs without the vector prefilter.
    fn next_each(&self, hay: &[u8], from: usize) -> Option<usize> {
        let rest = hay.get(from..)?;
        let (&[a, b], tail) = rest.split_first_chunk::<2>()?;
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
                return Some(from + j);
            }
            w >>= 8;
        }
        None
    }
}

#[inline(always)]
fn set(bits: &mut [u64; FILTER_BITS / 64], k: usize) {
    bits[k / 64] |= 1 << (k % 64);
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
    pub(crate) fn build(literals: &[Vec<u8>]) -> Result<Scanner, aho_corasick::BuildError> {
        match DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(literals)
        {
            Ok(dfa) => Ok(Scanner::Dfa {
                dfa: Box::new(dfa),
                starts: Starts::new(literals),
            }),
            Err(_) => AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(literals)
                .map(Scanner::Nfa),
        }
    }

    /// Call `f(pattern, start, end)` for every (overlapping) literal match in `hay`, in
    /// order of their ends.
    #[inline]
    pub(crate) fn for_each(&self, hay: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        let (dfa, starts) = match self {
            Scanner::Dfa { dfa, starts } => (&**dfa, starts.as_deref()),
            Scanner::Nfa(ac) => {
                for m in ac.find_overlapping_iter(hay) {
                    f(m.pattern().as_usize(), m.start(), m.end());
                }
                return;
            }
        };
        // An unanchored search always has a start state.
        let Ok(start) = dfa.start_state(Anchored::No) else {
            return;
        };
        let n = hay.len();
        let mut sid = start;
        let mut i = 0;
        while i < n {
            if sid == start
                && let Some(starts) = starts
            {
                match starts.next(hay, i) {
                    Some(at) => i = at,
                    // No literal of three or more bytes fits in what is left.
                    None => return,
                }
            }
            sid = dfa.next_state(Anchored::No, sid, hay[i]);
            i += 1;
            if dfa.is_special(sid) && dfa.is_match(sid) {
                for m in 0..dfa.match_len(sid) {
                    let p = dfa.match_pattern(sid, m);
                    f(p.as_usize(), i - dfa.pattern_len(p), i);
                }
            }
        }
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
        ac.find_overlapping_iter(hay)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect()
    }

    /// The same scanner with the byte-at-a-time filter, as on a CPU without the vector one.
    fn bytewise(s: Scanner) -> Scanner {
        match s {
            Scanner::Dfa {
                dfa,
                starts: Some(mut st),
            } => {
                st.teddy = None;
                Scanner::Dfa {
                    dfa,
                    starts: Some(st),
                }
            }
            other => other,
        }
    }

    fn scan(s: &Scanner, hay: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        s.for_each(hay, |p, a, b| out.push((p, a, b)));
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
        // Lengths below, at and past the vector filter's 34-byte window.
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
            matches!(&s, Scanner::Dfa { starts: Some(st), .. } if st.teddy.is_some()),
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
    fn short_literals_turn_the_filter_off_and_still_match() {
        let literals = lits(&["ok", "x", "oops"]);
        let s = Scanner::build(&literals).expect("scanner");
        assert!(matches!(&s, Scanner::Dfa { starts: None, .. }));
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
