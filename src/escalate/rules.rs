//! The rule-based classifier: the default when no LLM is configured and the fallback when
//! it fails. Deterministic and offline: severity from the rule and the count, the error
//! type from keyword families, the title from the template, the component from the stack
//! trace, and a first suggestion per keyword.

use crate::event::{ErrorClassification, ErrorType, Incident, Severity};

/// Keyword families, matched case-insensitively against the template, the rule ids and
/// the first sample. Each hit scores one point for its type.
const FAMILIES: &[(ErrorType, &[&str])] = &[
    (
        ErrorType::Security,
        &[
            "unauthorized",
            "unauthorised",
            "forbidden",
            "access denied",
            "permission denied",
            "authentication failed",
            "invalid token",
            "invalid signature",
            "csrf",
            "xss",
            "sql injection",
            "brute",
            "certificate verify",
            "certificate has expired",
            "tls handshake",
            "x509",
            "intrusion",
        ],
    ),
    (
        ErrorType::Infrastructure,
        &[
            "connection refused",
            "connection reset",
            "no route to host",
            "network is unreachable",
            "host unreachable",
            "name resolution",
            "temporary failure in name",
            "dns",
            "no space left",
            "disk full",
            "read-only file system",
            "i/o error",
            "oomkilled",
            "out of memory",
            "killed process",
            "broken pipe",
            "econnrefused",
            "econnreset",
            "service unavailable",
            "bad gateway",
            "node not ready",
            "kernel",
            "hardware",
            "exited with code",
        ],
    ),
    (
        ErrorType::Performance,
        &[
            "timeout",
            "timed out",
            "deadline exceeded",
            "too slow",
            "slow query",
            "latency",
            "rate limit",
            "too many requests",
            "gc overhead",
            "pool exhausted",
            "queue full",
            "backpressure",
            "throttl",
        ],
    ),
    (
        ErrorType::Configuration,
        &[
            "config",
            "environment variable",
            "missing required",
            "not configured",
            "invalid value",
            "unknown option",
            "no such file",
            "not found in path",
            "invalid setting",
            "unsupported",
            "misconfigur",
        ],
    ),
    (
        ErrorType::Bug,
        &[
            "exception",
            "panic",
            "traceback",
            "nullpointer",
            "null pointer",
            "segmentation fault",
            "segfault",
            "assertion",
            "index out of",
            "out of bounds",
            "undefined",
            "is not a function",
            "typeerror",
            "keyerror",
            "attributeerror",
            "unwrap",
            "stack overflow",
            "deadlock",
        ],
    ),
];

/// Suggestions for specific keywords, first match wins; then one per type.
const HINTS: &[(&str, &str)] = &[
    (
        "connection refused",
        "Check that the dependency it connects to is running and listening on the address in the log, and that its health checks pass.",
    ),
    (
        "no space left",
        "Free disk space or grow the volume; check log rotation and temporary files on the host.",
    ),
    (
        "out of memory",
        "Raise the memory limit or find the allocation that grows (heap profile); check for leaks across requests.",
    ),
    (
        "oomkilled",
        "Raise the container memory limit or reduce the working set; compare usage with the limit before the kill.",
    ),
    (
        "timed out",
        "Find which call times out; check the dependency's latency and the timeout and retry settings on both sides.",
    ),
    (
        "timeout",
        "Find which call times out; check the dependency's latency and the timeout and retry settings on both sides.",
    ),
    (
        "deadline exceeded",
        "Check the downstream latency and whether the deadline is realistic for the request.",
    ),
    (
        "nullpointer",
        "Guard the null value at the frame in the stack trace and find why it is unset on this path.",
    ),
    (
        "null pointer",
        "Guard the null value at the frame in the stack trace and find why it is unset on this path.",
    ),
    (
        "traceback",
        "Reproduce with the input in the sample and fix the exception raised at the last frame of the traceback.",
    ),
    (
        "panic",
        "Reproduce with the input in the sample; replace the panicking call on this path with error handling.",
    ),
    (
        "certificate",
        "Renew or fix the certificate chain, and check the clock and the trusted roots on the client.",
    ),
    (
        "permission denied",
        "Check file modes, the user the process runs as, and the policy that denies the access.",
    ),
    (
        "too many requests",
        "Lower the request rate or raise the quota; add backoff honouring retry-after.",
    ),
    (
        "deadlock",
        "Look at the lock order in the code paths in the samples; take locks in one global order.",
    ),
];

const TYPE_HINTS: &[(ErrorType, &str)] = &[
    (
        ErrorType::Bug,
        "Reproduce with the sample input and fix the failing code path named by the stack trace or message.",
    ),
    (
        ErrorType::Performance,
        "Measure where the time goes (traces, slow query logs) and check limits, pools and timeouts.",
    ),
    (
        ErrorType::Infrastructure,
        "Check the health of the host, network and dependencies named in the message.",
    ),
    (
        ErrorType::Security,
        "Check whether the access was legitimate; rotate credentials if any may have leaked.",
    ),
    (
        ErrorType::Configuration,
        "Compare the running configuration with the expected one; the message names the setting.",
    ),
];

/// The rule-based classifier.
#[derive(Debug, Default, Clone)]
pub struct RuleClassifier;

impl RuleClassifier {
    /// Its version, part of the cache key: bump when the output for an input changes.
    pub const VERSION: &'static str = "rules-1";

    /// Classify an incident (already redacted).
    pub fn classify(&self, inc: &Incident) -> ErrorClassification {
        let first = inc.samples.first().map_or("", |s| s.text.as_str());
        let haystack =
            format!("{}\n{}\n{}", inc.template, inc.rules.join(" "), first).to_ascii_lowercase();
        // A label set by a rule file or the QA module decides the type outright.
        let labelled = inc
            .labels
            .iter()
            .find(|(k, _)| k == "error_type")
            .and_then(|(_, v)| ErrorType::ALL.into_iter().find(|t| t.as_str() == v));
        let (error_type, matched) = match labelled {
            Some(t) => (t, true),
            None => error_type(&haystack),
        };
        let severity = severity(inc);
        let component = component(first).unwrap_or_else(|| inc.key.service.to_string());
        let hint = HINTS
            .iter()
            .find(|(k, _)| haystack.contains(k))
            .map(|(_, h)| *h)
            .or_else(|| {
                TYPE_HINTS
                    .iter()
                    .find(|(t, _)| *t == error_type)
                    .map(|(_, h)| *h)
            })
            .unwrap_or("");
        ErrorClassification {
            is_error: true,
            severity,
            error_type,
            title: title(inc),
            description: description(inc, error_type),
            affected_component: component,
            suggested_fix: hint.to_string(),
            confidence: if matched { 0.6 } else { 0.3 },
        }
    }
}

/// The type whose family has the most keyword hits; ties go to the earlier family, and
/// no hit at all means a bug (an error nobody categorised is most often code).
fn error_type(haystack: &str) -> (ErrorType, bool) {
    let mut best = (ErrorType::Bug, 0usize);
    for (t, words) in FAMILIES {
        let n = words.iter().filter(|w| haystack.contains(*w)).count();
        if n > best.1 {
            best = (*t, n);
        }
    }
    (best.0, best.1 > 0)
}

/// The rule's severity, raised one step by volume (100+ records) and one by regression,
/// never above high unless a rule said critical: counts alone do not make an outage.
fn severity(inc: &Incident) -> Severity {
    let mut s = inc.severity;
    let raise = |s: Severity| match s {
        Severity::Low => Severity::Medium,
        Severity::Medium => Severity::High,
        other => other,
    };
    if inc.count >= 100 {
        s = raise(s);
    }
    if inc.regression {
        s = raise(s);
    }
    s
}

/// `<template> (<service>)`, whitespace collapsed, at most 120 characters.
fn title(inc: &Incident) -> String {
    let t: String = inc
        .template
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut t = if t.is_empty() { "Error".to_string() } else { t };
    const MAX: usize = 100;
    if t.chars().count() > MAX {
        t = t.chars().take(MAX - 1).collect::<String>() + "…";
    }
    format!("{t} ({})", inc.key.service)
}

fn description(inc: &Incident, t: ErrorType) -> String {
    let article = if t == ErrorType::Infrastructure {
        "An"
    } else {
        "A"
    };
    let mut d = format!(
        "{article} {} error in {}: the template below was seen {} time{} between {} and {}",
        t.as_str(),
        inc.key.service,
        inc.count,
        if inc.count == 1 { "" } else { "s" },
        time_ms(inc.first_seen_ms),
        time_ms(inc.last_seen_ms),
    );
    if !inc.rules.is_empty() {
        d.push_str(&format!(", matching rule {}", inc.rules.join(", ")));
    }
    d.push_str(".\n");
    if inc.regression {
        d.push_str("It is a regression: it had resolved and fired again.\n");
    }
    d
}

/// RFC 3339 to the millisecond.
fn time_ms(ms: u64) -> String {
    let s = crate::event::format_rfc3339(ms as i64 * 1_000_000);
    match s.find('.') {
        Some(dot) => format!("{}Z", &s[..dot + 4]),
        None => s,
    }
}

/// The most specific place a stack trace names: a Java frame's class and method, a
/// Python frame's file and function, a Go frame's function, a Rust panic's location.
fn component(text: &str) -> Option<String> {
    for line in text.lines() {
        let l = line.trim();
        // Java: `at com.example.Foo.bar(Foo.java:42)`.
        if let Some(rest) = l.strip_prefix("at ")
            && let Some(open) = rest.find('(')
        {
            return Some(rest[..open].trim().to_string());
        }
        // Python: `File "app/views.py", line 10, in handler`.
        if let Some(rest) = l.strip_prefix("File \"")
            && let Some(q) = rest.find('"')
        {
            let func = rest.rsplit(", in ").next().filter(|f| *f != rest);
            return Some(match func {
                Some(f) => format!("{}:{}", &rest[..q], f.trim()),
                None => rest[..q].to_string(),
            });
        }
        // Rust: `thread 'main' panicked at src/lib.rs:10:5:`.
        if let Some(p) = l.find("panicked at ") {
            let loc = l[p + 12..].trim_end_matches(':');
            let loc = loc.split(':').next().unwrap_or(loc);
            return Some(loc.trim_matches('\'').to_string());
        }
    }
    // Go: a `goroutine N [running]:` line followed by `pkg.Func(...)`.
    let mut lines = text.lines().map(str::trim);
    while let Some(l) = lines.next() {
        if l.starts_with("goroutine ") && l.ends_with(':') {
            if let Some(f) = lines.next()
                && let Some(open) = f.find('(')
            {
                return Some(f[..open].to_string());
            }
            break;
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::event::{Fingerprint, IncidentKey, IncidentState, Sample, Trigger};

    pub(crate) fn incident(
        template: &str,
        sample: &str,
        severity: Severity,
        count: u64,
    ) -> Incident {
        Incident {
            id: "abc".into(),
            key: IncidentKey {
                service: "api".into(),
                fingerprint: Fingerprint(0xfeed),
            },
            template: template.into(),
            rules: vec!["error-generic".into()],
            severity,
            state: IncidentState::Open,
            trigger: Trigger::Threshold,
            regression: false,
            first_seen_ms: 1_700_000_000_000,
            last_seen_ms: 1_700_000_060_000,
            count,
            count_in_window: count,
            sources: vec!["docker:api".into()],
            samples: vec![Sample {
                time_ms: 1_700_000_000_000,
                text: sample.into(),
            }],
            labels: vec![],
            related: vec![],
            inhibited_by: None,
            late: 0,
        }
    }

    #[test]
    fn types_from_keyword_families() {
        let c = RuleClassifier;
        let cases = [
            (
                "dial tcp <*>: connection refused",
                ErrorType::Infrastructure,
            ),
            (
                "request to <*> timed out after <*> ms",
                ErrorType::Performance,
            ),
            (
                "login failed: invalid token for user <*>",
                ErrorType::Security,
            ),
            (
                "missing required environment variable <*>",
                ErrorType::Configuration,
            ),
            ("java.lang.NullPointerException", ErrorType::Bug),
            ("something odd happened", ErrorType::Bug),
        ];
        for (t, want) in cases {
            let got = c.classify(&incident(t, t, Severity::High, 1));
            assert_eq!(got.error_type, want, "{t}");
            assert!(
                got.title
                    .starts_with(t.split_whitespace().next().unwrap_or("")),
                "{}",
                got.title
            );
            assert!(!got.suggested_fix.is_empty());
        }
    }

    #[test]
    fn severity_rises_with_volume_and_regression_but_not_to_critical() {
        let c = RuleClassifier;
        assert_eq!(
            c.classify(&incident("x", "x", Severity::Low, 1)).severity,
            Severity::Low
        );
        assert_eq!(
            c.classify(&incident("x", "x", Severity::Low, 500)).severity,
            Severity::Medium
        );
        let mut i = incident("x", "x", Severity::High, 5000);
        i.regression = true;
        assert_eq!(c.classify(&i).severity, Severity::High);
        assert_eq!(
            c.classify(&incident("x", "x", Severity::Critical, 1))
                .severity,
            Severity::Critical
        );
    }

    #[test]
    fn component_from_stack_traces() {
        assert_eq!(
            component("java.lang.IllegalStateException: boom\n\tat com.shop.Cart.add(Cart.java:42)\n\tat x.y(Z.java:1)").as_deref(),
            Some("com.shop.Cart.add")
        );
        assert_eq!(
            component("Traceback (most recent call last):\n  File \"app/views.py\", line 10, in checkout\nKeyError: 'sku'").as_deref(),
            Some("app/views.py:checkout")
        );
        assert_eq!(
            component("panic: runtime error\n\ngoroutine 1 [running]:\nmain.handler(0x0)\n\t/app/main.go:12").as_deref(),
            Some("main.handler")
        );
        assert_eq!(
            component("thread 'main' panicked at src/main.rs:10:5:").as_deref(),
            Some("src/main.rs")
        );
        assert_eq!(component("plain message"), None);
    }

    #[test]
    fn long_templates_make_bounded_titles() {
        let t = "word ".repeat(100);
        let got = RuleClassifier.classify(&incident(&t, &t, Severity::Low, 1));
        assert!(
            got.title.chars().count() <= 100 + " (api)".len(),
            "{}",
            got.title
        );
        assert!(got.title.ends_with("(api)"));
    }
}
