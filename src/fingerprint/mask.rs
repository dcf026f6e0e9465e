//! Tokenizing and masking a message in one pass over its bytes.
//!
//! Words are runs of word bytes joined by single dots (`org.apache.Foo`, `10.0.0.1`); every
//! other byte is a one-byte punctuation token, so glued punctuation (`"GET`, `(uid=0)`,
//! `a,b`) splits while the template is still rendered from the original text. A token is a
//! variable by its shape: digits, hex ids, paths, URLs, IPv6/MAC addresses, booleans and
//! null, empty bracket or quote pairs. Variables glued by `:` or `,` form one variable
//! (`10.0.0.1:8080`, lists of hosts), and dates spread over several words
//! (`Sun Jul 24 02:40:26 2005`, `2026-01-01 10:00:00`) collapse into one.

/// One token: a byte span of the message and whether it is a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// Start byte offset.
    pub start: u32,
    /// End byte offset (exclusive). Equal to `start` for an empty value (`()`).
    pub end: u32,
    /// Whether the token is a variable.
    pub var: bool,
}

const WS: u8 = 1;
const WORD: u8 = 2;
const DIGIT: u8 = 4;
const HEX: u8 = 8;
const ALPHA: u8 = 16;
/// Bytes that end a path or URL besides whitespace.
const ENDS_PATH: u8 = 32;

/// Byte classes. Non-ASCII bytes count as word letters, so UTF-8 words stay whole.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut k = 0;
        if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' || c == 0x0b || c == 0x0c {
            k |= WS;
        }
        if c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'_' | b'-'
                    | b'/'
                    | b'$'
                    | b'#'
                    | b'@'
                    | b'*'
                    | b'+'
                    | b'~'
                    | b'%'
                    | b'&'
                    | b'!'
                    | b'?'
            )
            || c >= 0x80
        {
            k |= WORD;
        }
        if c.is_ascii_digit() {
            k |= DIGIT;
        }
        if c.is_ascii_hexdigit() {
            k |= HEX;
        }
        if c.is_ascii_alphabetic() || c >= 0x80 {
            k |= ALPHA;
        }
        if matches!(
            c,
            b'"' | b'\'' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'<' | b'>' | b',' | b';'
        ) {
            k |= ENDS_PATH;
        }
        t[i] = k;
        i += 1;
    }
    t
};

#[inline]
fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

/// Tokenize and mask `msg` into `out` (cleared first). Allocation-free once `out` has grown.
pub fn tokenize(msg: &str, out: &mut Vec<Token>) {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::avx2_available() {
        // SAFETY: the CPU was just found to have AVX2.
        #[allow(unsafe_code)]
        unsafe {
            avx2::tokenize(msg, out)
        };
        return;
    }
    tokenize_with(msg, out, |_, _| None);
}

/// A run of word bytes found by [`avx2::word_run`]: its length (32 when it runs on past
/// the 32 bytes looked at), and the [`CLASS`] bits its bytes have in common (`all`, of
/// which only [`HEX`] is kept) and that any of them has (`any`: [`DIGIT`] and [`ALPHA`]).
#[derive(Debug, Clone, Copy)]
struct Run {
    len: usize,
    all: u8,
    any: u8,
}

/// The tokenizer, with `run(b, i)` finding the run of word bytes at `i` 32 bytes at a time
/// where it can (`None` near the end, where the byte loop finishes the word).
#[inline(always)]
fn tokenize_with(msg: &str, out: &mut Vec<Token>, run: impl Fn(&[u8], usize) -> Option<Run>) {
    out.clear();
    let b = msg.as_bytes();
    let n = b.len();
    let mut i = 0;
    let mut maybe_date = false;
    // Only a word token of ten bytes can be the date of `2026-01-01 10:00:00`.
    let mut maybe_iso = false;
    while i < n {
        let c = b[i];
        let k = class(c);
        if k & WS != 0 {
            i += 1;
            continue;
        }
        let at_word_start = i == 0 || class(b[i - 1]) & WS != 0;
        // Paths run to the next whitespace: their inner punctuation (`?a=1&b=2`) belongs
        // to the one value. Relative ones too: `./bin/x`, `../x`, `~/x`.
        if matches!(c, b'/' | b'.' | b'~') && at_word_start && is_path_start(&b[i..]) {
            i = push_path(out, b, i);
            continue;
        }
        if k & WORD != 0 {
            let start = i;
            let mut all = 0xffu8;
            let mut any = 0u8;
            loop {
                // Words end at a byte that is hard to predict: a vector scan has no
                // branch per byte to mispredict.
                while let Some(r) = run(b, i) {
                    i += r.len;
                    all &= r.all;
                    any |= r.any;
                    if r.len < 32 {
                        break;
                    }
                }
                while i < n {
                    let k = class(b[i]);
                    if k & WORD == 0 {
                        break;
                    }
                    all &= k;
                    any |= k;
                    i += 1;
                }
                // A single dot between word bytes joins: `a.b.c`, `1.2.3.4`, `0.25s`.
                if i + 1 < n && b[i] == b'.' && class(b[i + 1]) & WORD != 0 {
                    all &= !HEX;
                    i += 1;
                    continue;
                }
                break;
            }
            // Only a word followed by ':' can be a URL scheme, an IPv6/MAC group or a time.
            if i < n && b[i] == b':' {
                if at_word_start
                    && i + 2 < n
                    && b[i + 1] == b'/'
                    && b[i + 2] == b'/'
                    && is_scheme(&b[start..i])
                {
                    i = push_path(out, b, start);
                    continue;
                }
                if all & HEX != 0
                    && i - start <= 4
                    && let Some(end) = hex_colon_at(b, start)
                {
                    push(out, b, start, end, true);
                    i = end;
                    continue;
                }
            }
            let word = &b[start..i];
            let var = any & DIGIT != 0
                || (all & HEX != 0 && word.len() >= 8 && any & ALPHA != 0)
                || (word.len() <= 5 && is_literal_value(word));
            if !var && word.len() == 3 && word[0].is_ascii_uppercase() {
                maybe_date |= is_month(word);
            }
            maybe_iso |= word.len() == 10 && word[4] == b'-';
            push(out, b, start, i, var);
            continue;
        }
        if c == b':' {
            // `::1`, `::ffff:10.0.0.1`
            if let Some(end) = hex_colon_at(b, i) {
                push(out, b, i, end, true);
                i = end;
                continue;
            }
        }
        // Punctuation. An empty bracket or quote pair standing alone is an empty value:
        // `from 1.2.3.4 () at` must match `from 1.2.3.4 (host) at`.
        let close = match c {
            b'(' => b')',
            b'[' => b']',
            b'{' => b'}',
            b'"' => b'"',
            b'\'' => b'\'',
            _ => 0,
        };
        push(out, b, i, i + 1, false);
        if close != 0 && at_word_start && i + 1 < n && b[i + 1] == close {
            out.push(Token {
                start: (i + 1) as u32,
                end: (i + 1) as u32,
                var: true,
            });
        }
        // Multi-byte UTF-8 chars are WORD, so a non-word byte here is one ASCII char.
        i += 1;
    }
    if maybe_date {
        merge_dates(b, out);
    }
    if maybe_iso {
        merge_iso_date_time(b, out);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{ALPHA, DIGIT, HEX, Run, Token};
    use crate::simd::load256 as load;
    use std::arch::x86_64::*;

    // The word bytes of [`super::CLASS`] as eight rectangles of (low nibble, high nibble)
    // sets, one bit each: a byte is in a rectangle when its two nibbles' table entries
    // share that bit, so two shuffles classify 32 bytes.
    /// `0`–`9`.
    const V_DIGIT: u8 = 1;
    /// `A`–`F`, `a`–`f`.
    const V_HEX: u8 = 2;
    /// `A`–`O`, `a`–`o`.
    const V_AO: u8 = 4;
    /// `P`–`Z`, `p`–`z`.
    const V_PZ: u8 = 8;
    /// 0x80 and up (UTF-8).
    const V_HIGH: u8 = 16;
    /// `!#$%&*+-/`.
    const V_PUNCT: u8 = 32;
    /// `?` and `_`.
    const V_QU: u8 = 64;
    /// `@` and `~` (and `N`, `p`: letters anyway).
    const V_AT: u8 = 128;

    /// The low nibble's table, then the high nibble's.
    pub(super) const TABLES: [[u8; 16]; 2] = {
        let mut t = [[0u8; 16]; 2];
        let mut n = 0;
        while n < 16 {
            let mut lo = V_HIGH;
            if n <= 9 {
                lo |= V_DIGIT;
            }
            if n >= 1 && n <= 6 {
                lo |= V_HEX;
            }
            if n >= 1 {
                lo |= V_AO;
            }
            if n <= 10 {
                lo |= V_PZ;
            }
            if matches!(n, 1 | 3 | 4 | 5 | 6 | 10 | 11 | 13 | 15) {
                lo |= V_PUNCT;
            }
            if n == 15 {
                lo |= V_QU;
            }
            if n == 0 || n == 14 {
                lo |= V_AT;
            }
            let hi = match n {
                2 => V_PUNCT,
                3 => V_DIGIT | V_QU,
                4 => V_HEX | V_AO | V_AT,
                5 => V_PZ | V_QU,
                6 => V_HEX | V_AO,
                7 => V_PZ | V_AT,
                8.. => V_HIGH,
                _ => 0,
            };
            t[0][n] = lo;
            t[1][n] = hi;
            n += 1;
        }
        t
    };

    /// The rectangle bits of `c`, a byte at a time (for tests).
    #[cfg(test)]
    pub(super) fn class_bits(c: u8) -> u8 {
        TABLES[0][usize::from(c & 15)] & TABLES[1][usize::from(c >> 4)]
    }

    /// [`super::tokenize_with`] compiled for AVX2 as a whole, with the vector word run.
    #[target_feature(enable = "avx2")]
    pub(super) fn tokenize(msg: &str, out: &mut Vec<Token>) {
        let lo: __m256i = bytemuck::cast([TABLES[0], TABLES[0]]);
        let hi: __m256i = bytemuck::cast([TABLES[1], TABLES[1]]);
        super::tokenize_with(msg, out, |b, i| match b.get(i..i + 32) {
            Some(w) => Some(word_run(lo, hi, w, 0)),
            // Near the end, the last 32 bytes, looked at from `i` on.
            None => (i < b.len() && b.len() >= 32)
                .then(|| word_run(lo, hi, &b[b.len() - 32..], i + 32 - b.len())),
        });
    }

    /// The run of word bytes from `w[skip]` on (`w` has 32 bytes); one that reaches the end
    /// of `w` is as long as the bytes left when `skip` is not 0, else 32.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn word_run(lo: __m256i, hi: __m256i, w: &[u8], skip: usize) -> Run {
        let v = load(w);
        let nibble = _mm256_set1_epi8(0x0f);
        let cls = _mm256_and_si256(
            _mm256_shuffle_epi8(lo, _mm256_and_si256(v, nibble)),
            _mm256_shuffle_epi8(hi, _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble)),
        );
        let zero = _mm256_setzero_si256();
        let without = |bits: u8| {
            let m = _mm256_and_si256(cls, _mm256_set1_epi8(bits as i8));
            (_mm256_movemask_epi8(_mm256_cmpeq_epi8(m, zero)) as u32) >> skip
        };
        // The bytes shifted in past the end of `w` end the run.
        let len = (without(0xff) | !(u32::MAX >> skip)).trailing_zeros();
        let span = u32::MAX.checked_shr(32 - len).unwrap_or(0);
        let mut any = 0;
        if !without(V_DIGIT) & span != 0 {
            any |= DIGIT;
        }
        if !without(V_AO | V_PZ | V_HIGH) & span != 0 {
            any |= ALPHA;
        }
        let all = if without(V_DIGIT | V_HEX) & span == 0 {
            0xff
        } else {
            !HEX
        };
        Run {
            len: len as usize,
            all,
            any,
        }
    }
}

/// A path or URL from `start` to the next whitespace or closing punctuation, as one
/// variable. Returns where it ends.
fn push_path(out: &mut Vec<Token>, b: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < b.len() && class(b[i]) & (WS | ENDS_PATH) == 0 {
        i += 1;
    }
    // Sentence punctuation after a path is not part of it: `open /a/b: denied`.
    while i > start + 1 && matches!(b[i - 1], b':' | b'.' | b'!' | b'?') {
        i -= 1;
    }
    push(out, b, start, i, true);
    i
}

fn is_path_start(b: &[u8]) -> bool {
    let rest = |skip: usize| b.get(skip).is_some_and(|c| class(*c) & WS == 0);
    match b {
        [b'/', ..] => rest(1),
        [b'.', b'/', ..] | [b'~', b'/', ..] => rest(2),
        [b'.', b'.', b'/', ..] => rest(3),
        _ => false,
    }
}

fn is_scheme(w: &[u8]) -> bool {
    w.len() <= 12
        && w[0].is_ascii_alphabetic()
        && w.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'))
}

/// Push a token, merging it into a preceding variable when they are glued by `:` or `,`
/// (`host:port`, `a,b,c`, `10:00:00,123`).
#[inline]
fn push(out: &mut Vec<Token>, b: &[u8], start: usize, end: usize, var: bool) {
    let len = out.len();
    if var && len >= 2 {
        let p = out[len - 1];
        let v = out[len - 2];
        if v.var
            && !p.var
            && p.end - p.start == 1
            && matches!(b[p.start as usize], b':' | b',')
            && v.end == p.start
            && p.end as usize == start
        {
            out.truncate(len - 1);
            out[len - 2].end = end as u32;
            return;
        }
    }
    out.push(Token {
        start: start as u32,
        end: end as u32,
        var,
    });
}

/// An IPv6 address or MAC address at `i`: hex groups of at most 4 joined by at least two
/// colons (`fe80::1`, `00:1b:44:11:3a:b7`), not inside a longer word. Returns its end.
fn hex_colon_at(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && (class(b[i - 1]) & WORD != 0 || b[i - 1] == b':' || b[i - 1] == b'.') {
        return None;
    }
    let mut j = i;
    let mut colons = 0;
    let mut group = 0;
    let mut digits = 0;
    while j < b.len() {
        let c = b[j];
        if c == b':' {
            colons += 1;
            group = 0;
        } else if class(c) & HEX != 0 {
            group += 1;
            if c.is_ascii_digit() {
                digits += 1;
            }
            if group > 4 {
                return None;
            }
        } else {
            break;
        }
        j += 1;
    }
    // Zone id, e.g. fe80::1%eth0.
    if j < b.len() && b[j] == b'%' && colons >= 2 {
        j += 1;
        while j < b.len() && b[j].is_ascii_alphanumeric() {
            j += 1;
        }
    }
    // Must end the word, and must not end on a colon used as punctuation ("ARPT: ...").
    let ends_word = j == b.len() || class(b[j]) & WORD == 0 && b[j] != b'.';
    let trailing_colon = b[j - 1] == b':' && !(j >= 2 && b[j - 2] == b':');
    if colons >= 2 && ends_word && !trailing_colon && (digits > 0 || colons >= 5) && j - i >= 5 {
        Some(j)
    } else {
        None
    }
}

fn is_literal_value(w: &[u8]) -> bool {
    w.eq_ignore_ascii_case(b"true")
        || w.eq_ignore_ascii_case(b"false")
        || w.eq_ignore_ascii_case(b"null")
        || w.eq_ignore_ascii_case(b"nil")
        || w.eq_ignore_ascii_case(b"none")
}

fn is_month(w: &[u8]) -> bool {
    matches!(
        w,
        b"Jan"
            | b"Feb"
            | b"Mar"
            | b"Apr"
            | b"May"
            | b"Jun"
            | b"Jul"
            | b"Aug"
            | b"Sep"
            | b"Oct"
            | b"Nov"
            | b"Dec"
    )
}

fn is_day(w: &[u8]) -> bool {
    matches!(
        w,
        b"Mon" | b"Tue" | b"Wed" | b"Thu" | b"Fri" | b"Sat" | b"Sun"
    )
}

fn span(b: &[u8], t: Token) -> &[u8] {
    &b[t.start as usize..t.end as usize]
}

/// `[Day] Mon DD HH:MM:SS [YYYY]` becomes one variable.
fn merge_dates(b: &[u8], out: &mut Vec<Token>) {
    let mut w = 0;
    let mut r = 0;
    while r < out.len() {
        let t = out[r];
        let is_date = !t.var
            && is_month(span(b, t))
            && r + 2 < out.len()
            && out[r + 1].var
            && out[r + 1].end - out[r + 1].start <= 2
            && out[r + 2].var
            && span(b, out[r + 2]).contains(&b':');
        if is_date {
            let mut start = t.start;
            if w > 0 && !out[w - 1].var && is_day(span(b, out[w - 1])) {
                w -= 1;
                start = out[w].start;
            }
            let mut end = out[r + 2].end;
            r += 3;
            if r < out.len() && out[r].var && out[r].end - out[r].start == 4 {
                end = out[r].end;
                r += 1;
            }
            out[w] = Token {
                start,
                end,
                var: true,
            };
            w += 1;
            continue;
        }
        out[w] = t;
        w += 1;
        r += 1;
    }
    out.truncate(w);
}

/// `2026-01-01 10:00:00.123` (date, space, time) becomes one variable.
fn merge_iso_date_time(b: &[u8], out: &mut Vec<Token>) {
    let is_ymd = |s: &[u8]| {
        s.len() == 10
            && s[4] == b'-'
            && s[7] == b'-'
            && s.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    };
    let mut i = 0;
    while i + 1 < out.len() {
        let (a, t) = (out[i], out[i + 1]);
        if a.var && t.var && is_ymd(span(b, a)) {
            let ts = span(b, t);
            if ts.len() >= 8 && ts[2] == b':' && ts[0].is_ascii_digit() {
                out[i].end = t.end;
                out.remove(i + 1);
            }
        }
        i += 1;
    }
}

/// Whether a constant token is a word (has a letter), as opposed to punctuation.
pub fn is_word(b: &[u8], t: Token) -> bool {
    !t.var && span(b, t).iter().any(|c| class(*c) & ALPHA != 0)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_vector_classes_are_the_byte_classes() {
        for c in 0..=255u8 {
            let v = avx2::class_bits(c);
            let k = class(c);
            let is = |bit: u8| k & bit != 0;
            assert_eq!(v != 0, is(WORD), "word {c:#x}");
            assert_eq!(v & 1 != 0, is(DIGIT), "digit {c:#x}");
            assert_eq!(v & 3 != 0, is(HEX), "hex {c:#x}");
            assert_eq!(v & (4 | 8 | 16) != 0, is(ALPHA), "alpha {c:#x}");
        }
    }

    /// Messages from pieces that end words in every way (spaces, dots, colons, glued
    /// punctuation, UTF-8), some longer than a vector, so words cross 32-byte chunks.
    fn messages() -> impl Iterator<Item = String> {
        const PIECES: &[&str] = &[
            "error",
            "0x1f2e3d4c5b6a7988",
            "deadbeefcafe",
            "10.0.0.1:8080",
            "org.apache.hadoop.hdfs.server.datanode.DataNode",
            "a_very_long_identifier_that_runs_past_thirty_two_bytes",
            "550e8400-e29b-41d4-a716-446655440000",
            "/var/lib/x/1234",
            "http://h:1/p?a=1",
            "fe80::1",
            "Sun Jul 24 02:40:26 2005",
            "2026-01-01 10:00:00",
            "(uid=0)",
            "\"GET",
            "a,b,c",
            "true",
            "né€",
            "x.",
            "...",
            "12ms",
            "@home~",
            "ABCDEF12",
        ];
        const GLUE: &[&str] = &[" ", "  ", ".", ":", ",", "=", "[", "]", "", "\t"];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as usize
        };
        (0..4000).map(move |_| {
            let mut m = String::new();
            for _ in 0..next() % 14 {
                m.push_str(PIECES[next() % PIECES.len()]);
                m.push_str(GLUE[next() % GLUE.len()]);
            }
            m
        })
    }

    #[test]
    fn the_vector_word_run_tokenizes_like_the_byte_loop() {
        assert!(
            crate::simd::avx2_available(),
            "this CPU has no AVX2: the vector path is not exercised"
        );
        let (mut want, mut got) = (Vec::new(), Vec::new());
        let mut tokens = 0;
        for m in messages() {
            tokenize_with(&m, &mut want, |_, _| None);
            tokenize(&m, &mut got);
            assert_eq!(got, want, "{m:?}");
            tokens += want.len();
        }
        assert!(tokens > 20_000, "only {tokens} tokens compared");
    }
}
