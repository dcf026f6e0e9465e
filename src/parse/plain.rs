//! The plain-text fast path for lines without a configured header format: find the level
//! word near the start, and where the message begins after it.

use super::json::{days_from_civil, digits};
use crate::event::Level;
use crate::simd::{ByteSet, next_bit};

/// How far into a line a level word is looked for. Headers are short; looking further would
/// mistake words in the message for the level.
const HEADER_SCAN_BYTES: usize = 160;
/// At most this many header tokens before the level.
const HEADER_SCAN_TOKENS: usize = 8;

/// Level and message start of a header-less line. Without a level word the whole line is
/// the message.
pub fn split(line: &str) -> (Option<Level>, &str) {
    // An RFC 3164 syslog header (`Jun 14 15:16:01 host tag[pid]: `) is all header: the
    // host and tag are not part of the message, whatever the level scan finds after it.
    if let Some(after) = syslog_header_end(line.as_bytes()) {
        let rest = &line[after..];
        return match split_levels(rest) {
            (Some(level), msg) => (Some(level), msg),
            (None, _) => (None, rest),
        };
    }
    split_levels(line)
}

/// Where the message starts after a syslog header, if the line has one.
fn syslog_header_end(b: &[u8]) -> Option<usize> {
    // `Mmm dd HH:MM:SS`: the timestamp parser says whether it is one.
    syslog_timestamp(b, 2000)?;
    let mut i = 3;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i += 9; // " HH:MM:SS"
    let skip_word = |mut i: usize| {
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(|c| *c != b' ') {
            i += 1;
        }
        (start, i)
    };
    let (host_start, host_end) = skip_word(i);
    if host_end == host_start {
        return None;
    }
    // The tag: `sshd(pam_unix)[19939]:` or `kernel:`; without a colon there is no tag.
    let (tag_start, tag_end) = skip_word(host_end);
    let end = if tag_end > tag_start && b[tag_end - 1] == b':' {
        tag_end
    } else {
        host_end
    };
    let mut end = end;
    while b.get(end) == Some(&b' ') {
        end += 1;
    }
    Some(end)
}

/// Level and message start by scanning the first header tokens for a level word.
fn split_levels(line: &str) -> (Option<Level>, &str) {
    let bytes = line.as_bytes();
    let limit = bytes.len().min(HEADER_SCAN_BYTES);
    let seps: [u64; SEP_WORDS] = SEPS.masks(bytes);
    let mut i = 0;
    let mut tokens = 0;
    while i < limit && tokens < HEADER_SCAN_TOKENS {
        i = next_bit(&seps, i, false).min(limit);
        let start = i;
        i = next_bit(&seps, i, true);
        if i == 64 * SEP_WORDS {
            // A token running past the masked bytes ends at the next separator or the end.
            i = i.min(bytes.len());
            while i < bytes.len() && !SEPS.contains(bytes[i]) {
                i += 1;
            }
        }
        if start == i {
            break;
        }
        tokens += 1;
        // Most header tokens are timestamps, ids and names: reject them on the first byte.
        if !matches!(
            bytes[start].to_ascii_lowercase(),
            b't' | b'v'
                | b'f'
                | b'd'
                | b'i'
                | b'n'
                | b'w'
                | b'e'
                | b's'
                | b'c'
                | b'p'
                | b'a'
                | b'l'
        ) {
            continue;
        }
        let word = &bytes[start..i];
        // `level=error` / `lvl:warn` carry the level after the key.
        // Header words are short: a plain loop beats memchr's setup.
        let word = match word.iter().position(|&c| c == b'=' || c == b':') {
            Some(eq) if is_level_key(&word[..eq]) => &word[eq + 1..],
            _ => word,
        };
        // Upper-case single words are what headers use; a lower-case "error" in the first
        // words of free text is part of the message, so only keys or brackets allow it.
        let bracketed = start > 0 && matches!(bytes[start - 1], b'[' | b'<' | b'(');
        let shouty = word.iter().all(|c| !c.is_ascii_lowercase());
        if !(shouty || bracketed || word.len() != (i - start)) || !could_be_level(word) {
            continue;
        }
        if let Some(level) = Level::from_word(trim_punct(word), false) {
            return (Some(level), message_after(line, i));
        }
    }
    (None, line)
}

/// A cheap reject before [`Level::from_word`]: level words are 3 to 11 bytes and start with
/// one of a few letters.
fn could_be_level(w: &[u8]) -> bool {
    let w = trim_punct(w);
    (3..=11).contains(&w.len())
        && matches!(
            w[0].to_ascii_lowercase(),
            b't' | b'v' | b'f' | b'd' | b'i' | b'n' | b'w' | b'e' | b's' | b'c' | b'p' | b'a'
        )
}

fn is_level_key(k: &[u8]) -> bool {
    k.eq_ignore_ascii_case(b"level")
        || k.eq_ignore_ascii_case(b"lvl")
        || k.eq_ignore_ascii_case(b"severity")
        || k.eq_ignore_ascii_case(b"loglevel")
}

fn trim_punct(w: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = w.len();
    while a < b && !w[a].is_ascii_alphanumeric() {
        a += 1;
    }
    while b > a && !w[b - 1].is_ascii_alphanumeric() {
        b -= 1;
    }
    &w[a..b]
}

/// Token separators of a header. The scan reads them as bitmasks of the header's bytes.
const SEPS: ByteSet = ByteSet::new(b" \t[]()<>|,");
/// The masks cover `64 * SEP_WORDS` bytes, past [`HEADER_SCAN_BYTES`] so that a token
/// starting inside the scanned header rarely needs the byte loop to find its end.
const SEP_WORDS: usize = 3;

/// Skip the punctuation after the level, then at most two logger-like tokens (`[main]`,
/// `org.apache.Foo:`), to where the message starts.
fn message_after(line: &str, mut i: usize) -> &str {
    let b = line.as_bytes();
    let skip_punct = |i: &mut usize| {
        while *i < b.len()
            && matches!(
                b[*i],
                b' ' | b'\t' | b']' | b')' | b'>' | b':' | b'|' | b'-'
            )
        {
            *i += 1;
        }
    };
    skip_punct(&mut i);
    for _ in 0..2 {
        let start = i;
        if i < b.len() && b[i] == b'[' {
            // Balanced: thread names nest brackets (`[QuorumPeer[myid=1]/...@595]`).
            match matching_bracket(&b[i..]) {
                Some(close) if close < 128 => {
                    i += close + 1;
                    skip_punct(&mut i);
                    continue;
                }
                _ => break,
            }
        }
        let mut j = i;
        while j < b.len() && !b[j].is_ascii_whitespace() {
            j += 1;
        }
        // A logger name ends with ':' and has no spaces: `dfs.DataNode$PacketResponder:`;
        // or, as Python's logging and oslo.log write it, is a dotted name followed by a
        // bracketed context: `nova.compute.manager [req-1 ...] message`.
        let dotted = b[start..j].iter().any(|c| *c == b'.' || *c == b'$');
        let colon = j > start + 1 && b[j - 1] == b':';
        let context_follows = b.get(j) == Some(&b' ') && b.get(j + 1) == Some(&b'[');
        if dotted && (colon || context_follows) && !b[start].is_ascii_digit() {
            i = j;
            skip_punct(&mut i);
        } else {
            break;
        }
    }
    // `i` only ever advanced over ASCII bytes, so it is a char boundary.
    line.get(i..).unwrap_or(line)
}

/// The offset of the `]` that closes the `[` at the start of `b`. Only brackets move the
/// depth, so memchr hops between them rather than stepping through thread names a byte at
/// a time.
fn matching_bracket(b: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    for i in memchr::memchr2_iter(b'[', b']', b) {
        if b[i] == b'[' {
            depth += 1;
        } else {
            depth = depth.checked_sub(1)?;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// A timestamp at the start of a line: ISO-8601/RFC 3339, or the syslog form
/// `Jun 14 15:16:01` (which has no year: `year` is assumed).
pub fn leading_timestamp(line: &str, year: i32) -> Option<i64> {
    let b = line.as_bytes();
    if b.len() >= 15 && b[0].is_ascii_uppercase() {
        return syslog_timestamp(b, year);
    }
    if b.len() < 19 || !b[0].is_ascii_digit() || b[4] != b'-' {
        return None;
    }
    // `2026-01-01 10:00:00.123` has a space between date and time; RFC 3339 has a `T`.
    let end = match next_space(b, 0) {
        10 => next_space(b, 11),
        p => p,
    };
    super::json::parse_rfc3339(line.get(..end)?)
}

/// `Mmm dd HH:MM:SS` (day space-padded or not), as syslog (RFC 3164) writes it.
fn syslog_timestamp(b: &[u8], year: i32) -> Option<i64> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    // Most lines start with no month at all: reject them on the first byte.
    if !matches!(
        b.first()?,
        b'J' | b'F' | b'M' | b'A' | b'S' | b'O' | b'N' | b'D'
    ) {
        return None;
    }
    let month = MONTHS.iter().position(|m| b.starts_with(*m))? as i64 + 1;
    let mut i = 3;
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    let day_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let day = digits(&b[day_start..i])?;
    if i == day_start || i - day_start > 2 || b.get(i) != Some(&b' ') || !(1..=31).contains(&day) {
        return None;
    }
    let t = b.get(i + 1..i + 9)?;
    let num = |r: std::ops::Range<usize>| digits(&t[r]);
    if t[2] != b':' || t[5] != b':' {
        return None;
    }
    let (h, m, s) = (num(0..2)?, num(3..5)?, num(6..8)?);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    (days * 86_400 + h * 3600 + m * 60 + s).checked_mul(1_000_000_000)
}

fn next_space(b: &[u8], from: usize) -> usize {
    b[from..]
        .iter()
        .position(|c| *c == b' ' || *c == b'\t')
        .map_or(b.len(), |p| from + p)
}
