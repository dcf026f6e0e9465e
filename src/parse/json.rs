//! JSON records with simd-json: Docker json-file lines and application JSON logs.
//!
//! simd-json parses in place over a reused buffer into a reused tape, so the steady state
//! allocates nothing. Only top-level string fields are read; nested values are skipped by
//! their node counts.

use simd_json::{Buffers, INPUT_PADDING, Node, StaticNode, Tape};

use crate::event::{Level, Stream};

/// The fields medic reads from one JSON object, borrowed from the parse buffer.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    /// Docker: the `log` field (the line, usually with a trailing `\n`).
    pub log: Option<&'a str>,
    /// Docker: `stream`.
    pub stream: Option<&'a str>,
    /// Docker: `time`, or an application's `time`/`ts`/`timestamp`/`@timestamp` string.
    pub time: Option<&'a str>,
    /// Numeric epoch time (`ts`: seconds or milliseconds), if given as a number.
    pub time_num: Option<f64>,
    /// `level`/`severity`/`lvl`/`loglevel`.
    pub level: Option<&'a str>,
    /// `msg`/`message`.
    pub message: Option<&'a str>,
    /// `error`/`err`/`exception` (as a string).
    pub error: Option<&'a str>,
    /// `stack`/`stack_trace`/`stacktrace`.
    pub stack: Option<&'a str>,
}

impl<'a> Fields<'a> {
    /// Whether this looks like a Docker json-file record.
    pub fn is_docker(&self) -> bool {
        self.log.is_some() && (self.stream.is_some() || self.time.is_some())
    }

    /// The level, normalised.
    pub fn level(&self) -> Option<Level> {
        self.level
            .and_then(|l| Level::from_word(l.trim().as_bytes(), true))
    }

    /// The Docker stream.
    pub fn stream(&self) -> Stream {
        match self.stream {
            Some("stdout") => Stream::Stdout,
            Some("stderr") => Stream::Stderr,
            _ => Stream::Unknown,
        }
    }
}

/// Reusable simd-json state: input copy, scratch buffers and tape.
pub struct JsonParser {
    input: Vec<u8>,
    buffers: Buffers,
    tape: Option<Tape<'static>>,
}

impl Default for JsonParser {
    fn default() -> Self {
        JsonParser {
            input: Vec::with_capacity(4096),
            buffers: Buffers::new(4096),
            tape: Some(Tape(Vec::with_capacity(64))),
        }
    }
}

impl std::fmt::Debug for JsonParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonParser").finish_non_exhaustive()
    }
}

impl JsonParser {
    /// Parse one JSON object and hand its fields to `f`. Returns `None` when the bytes are
    /// not a JSON object (the caller falls back to plain text and counts it).
    pub fn with_fields<R>(&mut self, bytes: &[u8], f: impl FnOnce(&Fields<'_>) -> R) -> Option<R> {
        // Caller-side padding lets simd-json skip its own padded copy of the input.
        self.input.clear();
        self.input.extend_from_slice(bytes);
        self.input.resize(bytes.len() + INPUT_PADDING, 0);
        // The tape keeps its allocation across lines; `reset` re-brands its lifetime to the
        // current input, and back to 'static once the fields are consumed.
        let mut tape: Tape<'_> = self.tape.take().unwrap_or_else(|| Tape(Vec::new())).reset();
        let parsed =
            simd_json::fill_tape_padded(&mut self.input, bytes.len(), &mut self.buffers, &mut tape);
        let result = match parsed {
            Ok(()) => read_fields(&tape.0).map(|fields| f(&fields)),
            Err(_) => None,
        };
        self.tape = Some(tape.reset());
        result
    }
}

fn read_fields<'a>(nodes: &[Node<'a>]) -> Option<Fields<'a>> {
    let Some(Node::Object { len, .. }) = nodes.first() else {
        return None;
    };
    let mut out = Fields::default();
    let mut i = 1;
    for _ in 0..*len {
        let Some(Node::String(key)) = nodes.get(i) else {
            return None;
        };
        i += 1;
        let value = nodes.get(i)?;
        match value {
            Node::String(s) => assign(&mut out, key, s),
            Node::Static(StaticNode::F64(x)) if is_time_key(key) => out.time_num = Some(*x),
            Node::Static(StaticNode::I64(x)) if is_time_key(key) => out.time_num = Some(*x as f64),
            Node::Static(StaticNode::U64(x)) if is_time_key(key) => out.time_num = Some(*x as f64),
            _ => {}
        }
        i += match value {
            Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
            _ => 1,
        };
    }
    Some(out)
}

fn is_time_key(key: &str) -> bool {
    matches!(key, "time" | "ts" | "timestamp" | "@timestamp")
}

fn assign<'a>(out: &mut Fields<'a>, key: &str, value: &'a str) {
    let slot = match key {
        "log" => &mut out.log,
        "stream" => &mut out.stream,
        "time" | "ts" | "timestamp" | "@timestamp" | "t" => &mut out.time,
        "level" | "severity" | "lvl" | "loglevel" | "log.level" | "levelname" => &mut out.level,
        "msg" | "message" | "@message" => &mut out.message,
        "error" | "err" | "exception" | "error.message" => &mut out.error,
        "stack" | "stack_trace" | "stacktrace" | "error.stack" | "exc_info" => &mut out.stack,
        _ => return,
    };
    if slot.is_none() {
        *slot = Some(value);
    }
}

/// Parse an RFC 3339 timestamp (`2026-01-01T00:00:00.123456789Z`, or with an offset) into
/// nanoseconds since the epoch. No allocation, no time-zone database.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    rfc3339_rest(b, rfc3339_minute(b)?)
}

/// Remembers the minute of the last RFC 3339 timestamp: consecutive records of one stream
/// share it, so the calendar arithmetic runs once a minute rather than once a line.
#[derive(Debug, Default)]
pub struct Rfc3339Cache {
    /// The last valid minute prefix, and its seconds since the epoch.
    minute: Option<([u8; 16], i64)>,
}

impl Rfc3339Cache {
    /// [`parse_rfc3339`], reusing the last timestamp's minute when it is the same.
    pub fn parse(&mut self, s: &str) -> Option<i64> {
        let b = s.as_bytes();
        let prefix = b.first_chunk::<16>()?;
        let secs = match self.minute {
            Some((m, secs)) if m == *prefix => secs,
            _ => {
                let secs = rfc3339_minute(b)?;
                self.minute = Some((*prefix, secs));
                secs
            }
        };
        rfc3339_rest(b, secs)
    }
}

/// A short run of ASCII digits (one to four) as a number, without allocating.
pub(crate) fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 4 {
        return None;
    }
    b.iter().try_fold(0i64, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

/// Eight ASCII digits as a number, or `None` if any byte is not a digit: the digits are
/// checked and combined in pairs, fours and eights within one word.
fn eight_digits(b: &[u8; 8]) -> Option<u32> {
    let v = u64::from_le_bytes(*b);
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Every byte is 0x30..=0x39: its high nibble is 3, and adding 6 keeps it 3.
    if v & HIGH != ZEROS || v.wrapping_add(0x0606_0606_0606_0606) & HIGH != ZEROS {
        return None;
    }
    // Little-endian: the first digit is the lowest byte, so each step puts the earlier
    // half in front.
    let mut x = v - ZEROS;
    x = (x * 10 + (x >> 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x * 100 + (x >> 16)) & 0x0000_ffff_0000_ffff;
    x = (x * 10_000 + (x >> 32)) & 0xffff_ffff;
    Some(x as u32)
}

/// [`digits`] at `b[r]`.
fn digits_at(b: &[u8], r: std::ops::Range<usize>) -> Option<i64> {
    b.get(r).and_then(digits)
}

/// Seconds since the epoch of the minute `YYYY-MM-DDTHH:MM` that starts `b`, before any
/// offset.
fn rfc3339_minute(b: &[u8]) -> Option<i64> {
    if b.len() < 19 {
        return None;
    }
    if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
        return None;
    }
    if b[13] != b':' {
        return None;
    }
    let (y, mo, d) = (
        digits_at(b, 0..4)?,
        digits_at(b, 5..7)?,
        digits_at(b, 8..10)?,
    );
    let (h, mi) = (digits_at(b, 11..13)?, digits_at(b, 14..16)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60)
}

/// The rest of a timestamp after its minute (`:SS`, a fraction, the offset), added to the
/// minute's seconds `minute`.
fn rfc3339_rest(b: &[u8], minute: i64) -> Option<i64> {
    if b.len() < 19 || b[16] != b':' {
        return None;
    }
    let sec = digits_at(b, 17..19)?;
    if sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    // Docker writes nine fraction digits: take eight of them in one word.
    if b.get(19) == Some(&b'.')
        && let Some(hi) = b.get(20..28).and_then(|w| eight_digits(w.try_into().ok()?))
        && let Some(&last) = b.get(28).filter(|c| c.is_ascii_digit())
        && !b.get(29).is_some_and(u8::is_ascii_digit)
    {
        nanos = i64::from(hi) * 10 + i64::from(last - b'0');
        i = 29;
    } else if i < b.len() && (b[i] == b'.' || b[i] == b',') {
        i += 1;
        let mut n = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if n < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
                n += 1;
            }
            i += 1;
        }
        while n < 9 {
            nanos *= 10;
            n += 1;
        }
    }
    let offset_s = match b.get(i) {
        None => 0,
        Some(b'Z') | Some(b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let oh = digits_at(b, i + 1..i + 3)?;
            let om = if b.get(i + 3) == Some(&b':') {
                digits_at(b, i + 4..i + 6)?
            } else {
                digits_at(b, i + 3..i + 5)?
            };
            let off = oh * 3600 + om * 60;
            if *sign == b'+' { off } else { -off }
        }
        Some(_) => return None,
    };
    let secs = minute + sec - offset_s;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil year of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(crate) fn year_of_day(days: i64) -> i32 {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2)) as i32
}

/// An epoch number in seconds, milliseconds, microseconds or nanoseconds, by magnitude.
pub fn epoch_to_nanos(x: f64) -> Option<i64> {
    if !x.is_finite() || x <= 0.0 {
        return None;
    }
    let ns = if x < 1e11 {
        x * 1e9
    } else if x < 1e14 {
        x * 1e6
    } else if x < 1e17 {
        x * 1e3
    } else {
        x
    };
    (ns < 9.2e18).then_some(ns as i64)
}
