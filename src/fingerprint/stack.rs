//! Stack-trace fingerprints, Sentry-style: the exception type plus the top in-app frames,
//! never the message text (which carries ids) nor line numbers (which move with every
//! deploy).

use super::miner::fingerprint_of;
use crate::event::Fingerprint;

/// How many frames identify a trace.
const FRAMES: usize = 3;

/// Frame prefixes of runtimes and common libraries: not the application's code.
const LIBRARY_PREFIXES: &[&str] = &[
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "scala.",
    "org.junit.",
    "org.springframework.",
    "org.apache.catalina.",
    "org.apache.tomcat.",
    "io.netty.",
    "reactor.",
    "runtime.",
    "net/http.",
    "testing.",
    "syscall.",
    "internal/",
    "reflect.",
];

/// A stack trace reduced to what identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackSignature {
    /// Exception type (`java.lang.IllegalStateException`, `ValueError`, `panic`).
    pub error_type: String,
    /// The top in-app frames (or the top frames when none is in-app), innermost first.
    pub frames: Vec<String>,
}

impl StackSignature {
    /// The template shown for the trace.
    pub fn template(&self) -> String {
        if self.frames.is_empty() {
            format!("{}: <*>", self.error_type)
        } else {
            format!("{}: <*> at {}", self.error_type, self.frames.join(" < "))
        }
    }

    /// The fingerprint: the template's, so it is stable across hosts.
    pub fn fingerprint(&self) -> Fingerprint {
        fingerprint_of(&self.template())
    }
}

/// Extract a signature from the full text of a multiline event. `None` when the text is
/// not a recognisable Java, Python or Go trace.
pub fn signature(text: &str) -> Option<StackSignature> {
    if text.contains("Traceback (most recent call last)") {
        return python(text);
    }
    if text.contains("goroutine ") && (text.contains("panic: ") || text.contains("fatal error: ")) {
        return go(text);
    }
    if text.lines().any(|l| l.trim_start().starts_with("at ")) {
        return java(text);
    }
    None
}

fn is_library(frame: &str) -> bool {
    LIBRARY_PREFIXES.iter().any(|p| frame.starts_with(p))
}

fn pick(frames: Vec<String>) -> Vec<String> {
    let app: Vec<String> = frames
        .iter()
        .filter(|f| !is_library(f))
        .take(FRAMES)
        .cloned()
        .collect();
    if app.is_empty() {
        frames.into_iter().take(FRAMES).collect()
    } else {
        app
    }
}

fn java(text: &str) -> Option<StackSignature> {
    let mut error_type = None;
    let mut frames = Vec::new();
    let mut cause_type = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(frame) = t.strip_prefix("at ") {
            // `com.acme.Foo.bar(Foo.java:42)` -> `com.acme.Foo.bar`
            let f = frame.split('(').next().unwrap_or(frame).trim();
            if cause_type.is_none() {
                frames.push(f.to_string());
            }
        } else if let Some(rest) = t.strip_prefix("Caused by:") {
            // The root cause names the bug better than the wrapper; keep the wrapper's
            // frames, which are where the application caught it.
            cause_type.get_or_insert_with(|| java_type(rest.trim()).unwrap_or_default());
        } else if error_type.is_none() {
            error_type = find_java_type(t);
        }
    }
    let mut error_type = error_type.or(cause_type.clone().filter(|c| !c.is_empty()))?;
    if let Some(c) = cause_type.filter(|c| !c.is_empty() && *c != error_type) {
        error_type = format!("{error_type} caused by {c}");
    }
    Some(StackSignature {
        error_type,
        frames: pick(frames),
    })
}

/// The exception class named in a line: `java.lang.IllegalStateException: boom`, or one
/// after a log header (`... ERROR Foo - request failed: java.io.IOException: x`).
fn find_java_type(line: &str) -> Option<String> {
    line.split([' ', '\t'])
        .filter_map(|w| java_type(w.trim_end_matches(':')))
        .next()
}

fn java_type(s: &str) -> Option<String> {
    let name = s.split(':').next()?.trim();
    let last = name.rsplit('.').next()?;
    let looks =
        (last.ends_with("Exception") || last.ends_with("Error") || last.ends_with("Throwable"))
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '$');
    looks.then(|| name.to_string())
}

fn python(text: &str) -> Option<StackSignature> {
    let mut frames = Vec::new();
    let mut error_type = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("File \"") {
            // `File "/app/svc/handlers.py", line 12, in create_order`
            let path = rest.split('"').next().unwrap_or("");
            let func = t.rsplit(", in ").next().unwrap_or("");
            let module = path.rsplit('/').next().unwrap_or(path);
            let library = path.contains("site-packages")
                || path.contains("dist-packages")
                || path.contains("/lib/python");
            frames.push((format!("{module}:{func}"), library));
        } else if !line.starts_with([' ', '\t']) && !t.is_empty() && !t.starts_with("Traceback") {
            let name = t.split(':').next().unwrap_or("");
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                error_type = Some(name.to_string());
            }
        }
    }
    // Python prints the innermost frame last.
    frames.reverse();
    let app: Vec<String> = frames
        .iter()
        .filter(|f| !f.1)
        .map(|f| f.0.clone())
        .take(FRAMES)
        .collect();
    let frames = if app.is_empty() {
        frames.into_iter().map(|f| f.0).take(FRAMES).collect()
    } else {
        app
    };
    Some(StackSignature {
        error_type: error_type.unwrap_or_else(|| "Traceback".into()),
        frames,
    })
}

fn go(text: &str) -> Option<StackSignature> {
    let mut error_type = None;
    let mut frames = Vec::new();
    let mut in_first_goroutine = false;
    for line in text.lines() {
        let t = line.trim();
        if error_type.is_none()
            && let Some(at) = t.find("panic: ").or_else(|| t.find("fatal error: "))
        {
            let kind = if t[at..].starts_with("panic") {
                "panic"
            } else {
                "fatal error"
            };
            // The panic value's type, when Go prints one: `panic: runtime error: ...`.
            let msg = &t[at..].split_once(": ").map(|x| x.1).unwrap_or("");
            let head: String = msg
                .split(':')
                .next()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_ascii_digit())
                .collect();
            error_type = Some(format!("{kind}: {}", head.trim()));
            continue;
        }
        if t.starts_with("goroutine ") {
            if !frames.is_empty() {
                break;
            }
            in_first_goroutine = true;
            continue;
        }
        if in_first_goroutine
            && !line.starts_with('\t')
            && t.ends_with(')')
            && let Some(open) = t.rfind('(')
        {
            frames.push(t[..open].to_string());
        }
    }
    Some(StackSignature {
        error_type: error_type?,
        frames: pick(
            frames
                .into_iter()
                .filter(|f| !f.starts_with("panic"))
                .collect(),
        ),
    })
}
