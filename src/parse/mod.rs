//! Parse: raw line bytes to [`Event`]s.
//!
//! Owns input decoding (UTF-8, control bytes, length bounds), the record formats (Docker
//! json-file and application JSON through simd-json, plain text with an optional LogPAI
//! header format or header-less level detection) and multiline joining.
//!
//! Bad input never fails the stage: every fallback (invalid UTF-8, truncation, malformed
//! JSON, control bytes, multiline bounds) is applied, flagged on the event and counted in
//! [`ParseStats`]. Only configuration can be an error ([`ParseError`]).
//!
//! The seam is [`Parser::push`], a plain function over bytes: sources, benches and the
//! window stage's driver all call it the same way.

mod config;
mod json;
mod logformat;
mod multiline;
mod plain;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

pub use config::{Format, MultilineConfig, ParseConfig};
pub use json::{Rfc3339Cache, epoch_to_nanos, parse_rfc3339};
pub use logformat::LogFormat;

use crate::event::{Event, Fallback, Stream};
use crate::simd::ByteSet;
use json::{Fields, JsonParser};
use multiline::Joiner;

/// A configuration error of the parse stage.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The log format string does not compile.
    #[error("invalid log format {format:?}: {reason}")]
    LogFormat {
        /// The format as given.
        format: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A bound is zero or otherwise unusable.
    #[error("invalid parse setting `{field}`: {reason}")]
    Setting {
        /// The config field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Counters of the parse stage, read per batch by telemetry and summaries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Physical lines read.
    pub lines: u64,
    /// Bytes read (before decoding).
    pub bytes: u64,
    /// Events emitted (after joining).
    pub events: u64,
    /// Lines decoded as Docker json-file records.
    pub docker_records: u64,
    /// Lines or `log` fields decoded as application JSON.
    pub json_records: u64,
    /// Per [`Fallback`] reason, indexed by its position in [`Fallback::ALL`].
    pub fallbacks: [u64; Fallback::ALL.len()],
    /// Continuation lines joined into a previous event.
    pub multiline_joins: u64,
}

impl ParseStats {
    /// The count for one fallback reason.
    pub fn fallback(&self, f: Fallback) -> u64 {
        self.fallbacks[f as usize]
    }
}

/// The parse stage for one stream of lines (one file, one container).
#[derive(Debug)]
pub struct Parser {
    format: Format,
    log_format: Option<LogFormat>,
    max_line_bytes: usize,
    outer: JsonParser,
    inner: JsonParser,
    joiner: Joiner,
    syslog_year: i32,
    times: Rfc3339Cache,
    stats: ParseStats,
}

impl Parser {
    /// Build a parser, validating the configuration once.
    pub fn new(cfg: &ParseConfig) -> Result<Parser, ParseError> {
        if cfg.max_line_bytes == 0 {
            return Err(ParseError::Setting {
                field: "max_line_bytes",
                reason: "must be greater than 0",
            });
        }
        if cfg.multiline.enabled && (cfg.multiline.max_lines == 0 || cfg.multiline.max_bytes == 0) {
            return Err(ParseError::Setting {
                field: "multiline",
                reason: "max_lines and max_bytes must be greater than 0",
            });
        }
        let log_format = cfg.log_format.as_deref().map(LogFormat::new).transpose()?;
        Ok(Parser {
            format: cfg.format,
            log_format,
            max_line_bytes: cfg.max_line_bytes,
            outer: JsonParser::default(),
            inner: JsonParser::default(),
            joiner: Joiner::new(cfg.multiline.clone()),
            syslog_year: cfg.syslog_year.unwrap_or_else(current_year),
            times: Rfc3339Cache::default(),
            stats: ParseStats::default(),
        })
    }

    /// The longest line the source should hand over; longer ones are cut by the source
    /// and passed with `truncated` set.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// Counters so far.
    pub fn stats(&self) -> &ParseStats {
        &self.stats
    }

    /// Decode one physical line (without its newline). Returns an event when one is
    /// complete; with multiline joining on, that is usually the previous line's event.
    /// `now_ms` is a monotonic clock reading used only for the multiline wait bound.
    pub fn push(&mut self, raw: &[u8], truncated: bool, now_ms: u64) -> Option<&Event> {
        self.stats.lines += 1;
        self.stats.bytes += raw.len() as u64;
        let partial = self.decode(raw, truncated);
        self.join(partial, now_ms)
    }

    /// Decode one line whose transport already gave its stream and time (the Docker Engine
    /// API, after joining Docker's partial records): the content is parsed as application
    /// JSON or plain text, and the transport's time wins over one in the text.
    pub fn push_content(
        &mut self,
        content: &[u8],
        stream: Stream,
        time_ns: Option<i64>,
        truncated: bool,
        now_ms: u64,
    ) -> Option<&Event> {
        self.stats.lines += 1;
        self.stats.bytes += content.len() as u64;
        let ev = &mut self.joiner.scratch;
        ev.clear();
        ev.lines = 1;
        if truncated {
            ev.fallbacks.insert(Fallback::Truncated);
        }
        let text = decode_utf8(content, &mut ev.fallbacks);
        fill_content(
            &text,
            time_ns,
            ev,
            &mut self.inner,
            self.log_format.as_ref(),
            self.syslog_year,
            &mut self.stats,
        );
        ev.stream = stream;
        self.join(false, now_ms)
    }

    /// Count the decoded line's fallbacks and hand it to the multiline joiner.
    fn join(&mut self, partial: bool, now_ms: u64) -> Option<&Event> {
        for f in self.joiner.scratch.fallbacks.iter() {
            self.stats.fallbacks[f as usize] += 1;
        }
        let before = self.joiner.bound_hits();
        let ready = self.joiner.push(partial, now_ms);
        if self.joiner.bound_hits() != before {
            self.stats.fallbacks[Fallback::MultilineBound as usize] += 1;
        }
        self.stats.multiline_joins = self.joiner.joins();
        self.emitted(ready)
    }

    fn emitted(&mut self, ready: bool) -> Option<&Event> {
        if !ready {
            return None;
        }
        self.stats.events += 1;
        Some(self.joiner.ready())
    }

    /// Emit a pending multiline event that has waited long enough.
    pub fn flush_due(&mut self, now_ms: u64) -> Option<&Event> {
        let ready = self.joiner.flush_due(now_ms);
        self.emitted(ready)
    }

    /// Emit the last pending event at end of input.
    pub fn finish(&mut self) -> Option<&Event> {
        let ready = self.joiner.finish();
        self.emitted(ready)
    }

    /// Decode `raw` into the joiner's scratch event. Returns whether it is a Docker partial
    /// line.
    fn decode(&mut self, raw: &[u8], truncated: bool) -> bool {
        let ev = &mut self.joiner.scratch;
        ev.clear();
        ev.lines = 1;
        if truncated {
            ev.fallbacks.insert(Fallback::Truncated);
        }
        let try_json = match self.format {
            Format::Plain => false,
            Format::Auto | Format::DockerJson | Format::Json => first_non_space(raw) == Some(b'{'),
        };
        if try_json {
            let log_format = self.log_format.as_ref();
            let year = self.syslog_year;
            let inner = &mut self.inner;
            let stats = &mut self.stats;
            let times = &mut self.times;
            let decoded = self.outer.with_fields(raw, |f| {
                if f.is_docker() {
                    stats.docker_records += 1;
                    let time = f.time.and_then(|t| times.parse(t));
                    Some(decode_docker(f, time, ev, inner, log_format, year, stats))
                } else {
                    stats.json_records += 1;
                    fill_app_json(f, raw, ev);
                    Some(false)
                }
            });
            if let Some(Some(partial)) = decoded {
                return partial;
            }
            ev.fallbacks.insert(Fallback::MalformedJson);
        } else if self.format != Format::Plain && self.format != Format::Auto {
            ev.fallbacks.insert(Fallback::MalformedJson);
        }
        let text = decode_utf8(raw, &mut ev.fallbacks);
        fill_plain(&text, ev, self.log_format.as_ref(), self.syslog_year);
        false
    }
}

/// The current UTC year, for syslog timestamps that carry none.
fn current_year() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json::year_of_day((secs / 86_400) as i64)
}

fn first_non_space(b: &[u8]) -> Option<u8> {
    b.iter().copied().find(|c| !c.is_ascii_whitespace())
}

fn decode_utf8<'a>(raw: &'a [u8], fallbacks: &mut crate::event::Fallbacks) -> Cow<'a, str> {
    match std::str::from_utf8(raw) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            fallbacks.insert(Fallback::InvalidUtf8);
            String::from_utf8_lossy(raw)
        }
    }
}

/// Append `src` to `dst`, replacing NUL and other control characters (all but tab) with
/// U+FFFD so they cannot corrupt terminals, JSON output or tickets downstream.
fn push_clean(dst: &mut String, src: &str, fallbacks: &mut crate::event::Fallbacks) {
    if !has_control(src.as_bytes()) {
        dst.push_str(src);
        return;
    }
    fallbacks.insert(Fallback::ControlBytes);
    dst.extend(src.chars().map(|c| {
        if (c.is_control() && c != '\t') && (c as u32) < 0xa0 {
            '\u{fffd}'
        } else {
            c
        }
    }));
}

/// Control characters other than tab.
const CONTROL: ByteSet = ByteSet::new(&{
    let mut set = [0x7f; 32];
    let mut c = 0;
    while c < 32 {
        if c != b'\t' {
            set[c as usize] = c;
        }
        c += 1;
    }
    set
});

/// Whether any byte is a control character other than tab; every line passes through here.
fn has_control(b: &[u8]) -> bool {
    CONTROL.any_in(b)
}

/// A plain-text line: header by log format, else header-less level detection.
fn fill_plain(line: &str, ev: &mut Event, log_format: Option<&LogFormat>, year: i32) {
    let line = line.strip_suffix('\r').unwrap_or(line);
    push_clean(&mut ev.text, line, &mut ev.fallbacks);
    let text = ev.text.as_str();
    let (level, content) = match log_format.and_then(|f| f.split(text)) {
        Some((level, content)) => (level, content),
        None => plain::split(text),
    };
    ev.level = level;
    // `content` is a sub-slice of `ev.text`, so its offset is exact.
    let start = content.as_ptr() as usize - text.as_ptr() as usize;
    ev.message = start..start + content.len();
    if ev.time_ns.is_none() {
        ev.time_ns = plain::leading_timestamp(text, year);
    }
}

/// A Docker json-file record: stream and time (`docker_time`, already parsed) from the
/// record; the `log` content is parsed again as application JSON or plain text. Returns
/// whether it is a partial line.
fn decode_docker(
    f: &Fields<'_>,
    docker_time: Option<i64>,
    ev: &mut Event,
    inner: &mut JsonParser,
    log_format: Option<&LogFormat>,
    year: i32,
    stats: &mut ParseStats,
) -> bool {
    let log = f.log.unwrap_or("");
    let (content, partial) = match log.strip_suffix('\n') {
        Some(c) => (c, false),
        None => (log, true),
    };
    let content = content.strip_suffix('\r').unwrap_or(content);
    fill_content(content, docker_time, ev, inner, log_format, year, stats);
    ev.stream = f.stream();
    partial
}

/// A line's content after its transport framing: application JSON, else plain text. The
/// transport's time, when it has one, wins over a time in the content.
fn fill_content(
    content: &str,
    transport_time: Option<i64>,
    ev: &mut Event,
    inner: &mut JsonParser,
    log_format: Option<&LogFormat>,
    year: i32,
    stats: &mut ParseStats,
) {
    let mut done = false;
    if first_non_space(content.as_bytes()) == Some(b'{') {
        done = inner
            .with_fields(content.as_bytes(), |g| {
                stats.json_records += 1;
                fill_app_json(g, content.as_bytes(), ev);
            })
            .is_some();
    }
    if !done {
        // Set the transport's time first so the line's own prefix is not parsed.
        ev.time_ns = transport_time;
        fill_plain(content, ev, log_format, year);
    }
    if transport_time.is_some() {
        ev.time_ns = transport_time;
    }
}

/// An application JSON object: message, level, error, stack and time from common keys.
/// Without a message key the whole object is the message, so rules still see its content.
fn fill_app_json(f: &Fields<'_>, raw: &[u8], ev: &mut Event) {
    match f.message.or(f.log) {
        Some(message) => push_clean(&mut ev.text, message, &mut ev.fallbacks),
        // Decoded only here: simd-json already validated the object, so this is rare.
        None => push_clean(
            &mut ev.text,
            &String::from_utf8_lossy(raw),
            &mut ev.fallbacks,
        ),
    }
    ev.message = 0..ev.text.len();
    if let Some(err) = f.error.filter(|e| !e.is_empty()) {
        ev.text.push('\n');
        let at = ev.text.len();
        push_clean(&mut ev.text, err, &mut ev.fallbacks);
        ev.error = at..ev.text.len();
    }
    if let Some(stack) = f.stack.filter(|s| !s.is_empty()) {
        ev.text.push('\n');
        let at = ev.text.len();
        push_clean(&mut ev.text, stack, &mut ev.fallbacks);
        ev.stack = at..ev.text.len();
        ev.lines = ev.lines.max(1 + stack.matches('\n').count() as u32);
    }
    ev.level = f.level();
    ev.stream = f.stream();
    ev.time_ns = f
        .time
        .and_then(parse_rfc3339)
        .or_else(|| f.time_num.and_then(epoch_to_nanos));
}
