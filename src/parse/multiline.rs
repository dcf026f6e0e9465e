//! Multiline joining: Java, Python and Go stack traces, indented continuations, and Docker's
//! 16 KiB partial lines, bounded in lines, bytes and wait time.
//!
//! An event stays pending until the next line shows it is complete, so each event leaves
//! one line late; streaming callers flush it after `wait_ms` with [`Joiner::flush_due`].
//! Three buffers rotate (scratch, pending, ready), so joining copies only continuation
//! lines and never allocates in the steady state.

use std::mem;

use super::config::MultilineConfig;
use crate::event::{Event, Fallback};

/// What kind of trace the pending event is, which decides what may continue it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Ordinary line: only indented lines, `Caused by:` and `... N more` continue it.
    Plain,
    /// Inside a Python traceback; `done` once the final `ValueError: ...` line was seen.
    Python { done: bool },
    /// After `panic:` / `fatal error:`: goroutine dumps continue it.
    Go,
}

/// Substring finders built once: every line's first-line check runs them.
#[derive(Debug)]
struct Starters {
    traceback: memchr::memmem::Finder<'static>,
    panic: memchr::memmem::Finder<'static>,
}

impl Default for Starters {
    fn default() -> Self {
        Starters {
            traceback: memchr::memmem::Finder::new("Traceback (most recent call last)"),
            panic: memchr::memmem::Finder::new("panic: "),
        }
    }
}

impl Mode {
    fn for_first_line(line: &str, s: &Starters) -> Mode {
        let t = line.trim_start();
        if s.traceback.find(line.as_bytes()).is_some() {
            Mode::Python { done: false }
        } else if t.starts_with("fatal error: ") || s.panic.find(line.as_bytes()).is_some() {
            Mode::Go
        } else {
            Mode::Plain
        }
    }

    /// Whether the trimmed line `t` continues an event in this mode, beyond what continues
    /// every mode ([`continues_any`]).
    fn continues_own(&mut self, t: &str, lines: u32) -> bool {
        match self {
            Mode::Plain => {
                // Loggers print the exception right after the one line that logged it:
                // logback's `com.acme.FooException: msg`, Python's `Traceback (most recent
                // call last):`. After anything longer it starts an event of its own.
                if lines != 1 {
                    return false;
                }
                if t.starts_with("Traceback (most recent call last)") {
                    *self = Mode::Python { done: false };
                    return true;
                }
                is_java_exception_header(t)
            }
            Mode::Python { done } => {
                if t.is_empty() {
                    return true;
                }
                if t.starts_with("During handling of the above exception")
                    || t.starts_with("The above exception was the direct cause")
                    || t.starts_with("Traceback (most recent call last)")
                {
                    *done = false;
                    return true;
                }
                if !*done && is_python_exception_line(t) {
                    *done = true;
                    return true;
                }
                false
            }
            Mode::Go => {
                t.is_empty()
                    || t.starts_with("goroutine ")
                    || t.starts_with("[signal ")
                    || t.starts_with("created by ")
                    || t.starts_with("exit status ")
                    || is_go_call_line(t)
            }
        }
    }
}

/// Continuation lines of every mode: indented lines, `Caused by:`, `Suppressed:` and
/// `... N more`.
fn continues_any(line: &str) -> bool {
    let indented = line.starts_with([' ', '\t']) && !line.trim().is_empty();
    let t = line.trim();
    indented
        || t.starts_with("Caused by:")
        || t.starts_with("Suppressed:")
        || (t.starts_with("... ") && t.ends_with(" more"))
}

/// Whether the trimmed line `t` could continue a one-line event in some mode: the union of
/// what [`Mode::continues_own`] accepts in each mode, spelled out because asking each mode
/// in turn costs 80 instructions a line more. When it cannot, the pending event is complete
/// whatever its mode, so the mode need not be worked out.
fn may_continue_first_line(t: &str) -> bool {
    t.is_empty()
        || t.starts_with("Traceback (most recent call last)")
        || t.starts_with("During handling of the above exception")
        || t.starts_with("The above exception was the direct cause")
        || t.starts_with("goroutine ")
        || t.starts_with("[signal ")
        || t.starts_with("created by ")
        || t.starts_with("exit status ")
        || is_python_exception_line(t)
        || is_java_exception_header(t)
        || is_go_call_line(t)
}

/// `java.lang.IllegalStateException: boom`, `com.acme.OrderError`: a package-qualified
/// class name ending in Exception, Error or Throwable. The dot keeps a Node.js
/// `Error: connect ECONNREFUSED` line, which is a record of its own, out.
fn is_java_exception_header(t: &str) -> bool {
    // Cheap rejects first: this runs on every single-line event.
    let b = t.as_bytes();
    if b.len() < 8 || !b[0].is_ascii_alphabetic() {
        return false;
    }
    let Some(name) = name_before_colon(b, |c| matches!(c, b'.' | b'_' | b'$')) else {
        return false;
    };
    let class = name.rsplit(|&c| c == b'.').next().unwrap_or_default();
    name.contains(&b'.')
        && (class.ends_with(b"Exception")
            || class.ends_with(b"Error")
            || class.ends_with(b"Throwable"))
}

/// `ValueError: bad`, `KeyError`, `requests.exceptions.HTTPError: 500`.
fn is_python_exception_line(t: &str) -> bool {
    t.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && name_before_colon(t.as_bytes(), |c| matches!(c, b'.' | b'_')).is_some()
}

/// The bytes before the first `:` (all of `b` without one), when every one of them is an
/// ASCII letter, digit or `extra`. Stops at the first other byte, so most lines are
/// rejected within a few bytes.
fn name_before_colon(b: &[u8], extra: impl Fn(u8) -> bool) -> Option<&[u8]> {
    for (i, &c) in b.iter().enumerate() {
        if c == b':' {
            return Some(&b[..i]);
        }
        if !(c.is_ascii_alphanumeric() || extra(c)) {
            return None;
        }
    }
    Some(b)
}

/// `main.main()`, `net/http.(*conn).serve(0xc000...)`.
fn is_go_call_line(t: &str) -> bool {
    if !t.ends_with(')') {
        return false;
    }
    match memchr::memchr(b'(', t.as_bytes()) {
        Some(open) => {
            let head = &t.as_bytes()[..open];
            !head.is_empty() && !head.contains(&b' ') && head.contains(&b'.')
        }
        None => false,
    }
}

/// Joins physical lines (decoded into `scratch`) into events.
#[derive(Debug)]
pub struct Joiner {
    cfg: MultilineConfig,
    /// The line just decoded by the parser.
    pub(super) scratch: Event,
    pending: Event,
    ready: Event,
    has_pending: bool,
    /// The pending event's mode; `None` until a line needs it. It is worked out from the
    /// first line alone, so it is always known once the event has a second line.
    mode: Option<Mode>,
    starters: Starters,
    /// The pending event's last physical line was a Docker partial (no newline yet).
    pending_partial: bool,
    pending_since_ms: u64,
    joins: u64,
    bound_hits: u64,
}

impl Joiner {
    /// A joiner with the given bounds.
    pub fn new(cfg: MultilineConfig) -> Joiner {
        Joiner {
            cfg,
            scratch: Event::default(),
            pending: Event::default(),
            ready: Event::default(),
            has_pending: false,
            mode: None,
            starters: Starters::default(),
            pending_partial: false,
            pending_since_ms: 0,
            joins: 0,
            bound_hits: 0,
        }
    }

    /// Continuation lines merged into earlier events so far.
    pub fn joins(&self) -> u64 {
        self.joins
    }

    /// Events cut because they reached a bound.
    pub fn bound_hits(&self) -> u64 {
        self.bound_hits
    }

    /// Take the decoded line in `scratch`. `partial` marks a Docker partial line (its
    /// text continues in the next record). Returns whether a completed event is ready in
    /// [`Joiner::ready`].
    pub fn push(&mut self, partial: bool, now_ms: u64) -> bool {
        if !self.cfg.enabled {
            mem::swap(&mut self.scratch, &mut self.ready);
            return true;
        }
        if self.has_pending {
            let same_stream = self.pending.stream == self.scratch.stream;
            let wants = same_stream && (self.pending_partial || self.continues());
            if wants {
                let fits = self.pending.lines < self.cfg.max_lines
                    && self.pending.text.len() + self.scratch.text.len() < self.cfg.max_bytes;
                if fits {
                    self.append_scratch();
                    self.pending_partial = partial;
                    return false;
                }
                self.bound_hits += 1;
                self.scratch.fallbacks.insert(Fallback::MultilineBound);
            }
            self.rotate(partial, now_ms);
            return true;
        }
        mem::swap(&mut self.scratch, &mut self.pending);
        self.start_pending(partial, now_ms);
        false
    }

    /// The last completed event.
    pub fn ready(&self) -> &Event {
        &self.ready
    }

    /// Emit the pending event if it has waited longer than `wait_ms`.
    pub fn flush_due(&mut self, now_ms: u64) -> bool {
        self.has_pending
            && now_ms.saturating_sub(self.pending_since_ms) >= self.cfg.wait_ms
            && self.finish()
    }

    /// Emit the pending event, if any (end of input).
    pub fn finish(&mut self) -> bool {
        if !self.has_pending {
            return false;
        }
        self.has_pending = false;
        mem::swap(&mut self.pending, &mut self.ready);
        self.pending.clear();
        true
    }

    /// Pending becomes ready; scratch becomes pending; the old ready is reused as scratch.
    fn rotate(&mut self, partial: bool, now_ms: u64) {
        mem::swap(&mut self.pending, &mut self.ready);
        mem::swap(&mut self.scratch, &mut self.pending);
        self.start_pending(partial, now_ms);
    }

    fn start_pending(&mut self, partial: bool, now_ms: u64) {
        self.has_pending = true;
        self.pending_partial = partial;
        self.pending_since_ms = now_ms;
        self.mode = None;
    }

    /// Whether the line in `scratch` continues the pending event. Most lines start an event
    /// of their own in every mode; for them the first-line search for `Traceback` or
    /// `panic:` is skipped.
    fn continues(&mut self) -> bool {
        let line = &self.scratch.text;
        if continues_any(line) {
            return true;
        }
        let t = line.trim();
        if self.mode.is_none() && !may_continue_first_line(t) {
            return false;
        }
        let mode = settle(&mut self.mode, &self.pending, &self.starters);
        mode.continues_own(t, self.pending.lines)
    }

    fn append_scratch(&mut self) {
        // The mode is read off the first line, so settle it before the second joins.
        settle(&mut self.mode, &self.pending, &self.starters);
        let p = &mut self.pending;
        let s = &self.scratch;
        if self.pending_partial {
            // A Docker partial line: the same physical line goes on, without a newline.
            let at = p.text.len();
            p.text.push_str(&s.text);
            if p.message.end == at {
                p.message.end = p.text.len();
            }
        } else {
            let before = p.text.len();
            p.text.push('\n');
            let at = p.text.len();
            p.text.push_str(&s.text);
            // The stack is the continuation lines, unless a JSON field already gave one.
            if p.stack.is_empty() {
                p.stack = at..p.text.len();
            } else if p.stack.end == before {
                p.stack.end = p.text.len();
            }
        }
        p.lines += s.lines.max(1);
        p.fallbacks.extend(s.fallbacks);
        if p.level.is_none() {
            p.level = s.level;
        }
        self.joins += 1;
    }
}

/// The pending event's mode, worked out from its (first) line when not yet known.
fn settle<'m>(mode: &'m mut Option<Mode>, pending: &Event, starters: &Starters) -> &'m mut Mode {
    mode.get_or_insert_with(|| Mode::for_first_line(&pending.text, starters))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_shortcut_is_the_union_of_the_modes() {
        let lines = [
            "",
            "Traceback (most recent call last):",
            "During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:",
            "goroutine 1 [running]:",
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x0]",
            "created by net/http.(*Server).Serve",
            "exit status 2",
            "ValueError: bad value",
            "KeyError",
            "java.lang.IllegalStateException: boom",
            "com.acme.OrderError",
            "main.main()",
            "net/http.(*conn).serve(0xc000123456)",
            "Error: connect ECONNREFUSED 127.0.0.1:5432",
            "081110 011448 28 INFO dfs.FSNamesystem: BLOCK* ask 10.0.0.1:50010",
            "2026-01-01 10:00:00 ERROR [main] svc.Worker: job 12 failed",
            "panic: runtime error: index out of range",
            "level=info msg=\"started (pid 12)\"",
        ];
        for t in lines {
            let any_mode = [Mode::Plain, Mode::Python { done: false }, Mode::Go]
                .into_iter()
                .any(|mut m| m.continues_own(t, 1));
            assert_eq!(may_continue_first_line(t), any_mode, "{t:?}");
        }
    }
}
