//! Secret redaction: everything that leaves the host (LLM prompts, ticket bodies, webhook
//! payloads) passes through [`Redactor::redact`] first.
//!
//! Patterns run in a fixed order, most specific first, so a bearer token inside an
//! `Authorization:` header is replaced as a token and the key=value pattern does not
//! half-replace it. Each replacement names the kind (`[REDACTED:jwt]`) so a reader of a
//! ticket knows something was there.

use std::borrow::Cow;

use regex::{Captures, Regex};

use super::EscalateError;

/// A compiled set of redaction patterns.
#[derive(Debug)]
pub struct Redactor {
    patterns: Vec<Pattern>,
}

#[derive(Debug)]
struct Pattern {
    kind: &'static str,
    rx: Regex,
    how: How,
}

#[derive(Debug, Clone, Copy)]
enum How {
    /// Replace the whole match.
    Whole,
    /// Keep capture group 1, replace the rest of the match.
    KeepPrefix,
    /// Keep groups 1 and 3, replace group 2.
    KeepAround,
    /// Replace only when the digits pass the Luhn check (card numbers).
    Luhn,
}

/// Built-in patterns: (kind, regex, how).
const BUILTIN: &[(&str, &str, How)] = &[
    (
        "private_key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)",
        How::Whole,
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}",
        How::Whole,
    ),
    (
        "api_key",
        concat!(
            r"\b(?:sk-ant-[A-Za-z0-9_-]{16,}",
            r"|sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
            r"|gh[pousr]_[A-Za-z0-9]{30,}",
            r"|github_pat_[A-Za-z0-9_]{30,}",
            r"|glpat-[A-Za-z0-9_-]{20,}",
            r"|xox[abposr]-[A-Za-z0-9-]{10,}",
            r"|(?:AKIA|ASIA)[0-9A-Z]{16}",
            r"|AIza[0-9A-Za-z_-]{35}",
            r"|(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}",
            r"|npm_[A-Za-z0-9]{36}",
            r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
            r"|hf_[A-Za-z0-9]{30,}",
            r")"
        ),
        How::Whole,
    ),
    (
        "bearer",
        r"(?i)\b((?:bearer|token|basic)\s+)[A-Za-z0-9._~+/=-]{8,}",
        How::KeepPrefix,
    ),
    (
        "url_password",
        r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)",
        How::KeepAround,
    ),
    (
        "key_value",
        concat!(
            r#"(?i)((?:"|')?\b(?:password|passwd|pwd|pass|secret|client_secret|token|access_token|refresh_token"#,
            r#"|auth_token|api[_-]?key|apikey|access[_-]?key(?:_id)?|secret[_-]?key|private[_-]?key|credentials?|session[_-]?id)"#,
            r#"(?:"|')?\s*[:=]\s*(?:"|')?)([^\s"',;&}]+)"#
        ),
        How::KeepPrefix,
    ),
    (
        "email",
        r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        How::Whole,
    ),
    ("card", r"\b\d(?:[ -]?\d){12,18}\b", How::Luhn),
];

impl Redactor {
    /// The built-in patterns plus the user's (`extra`, each a regex whose whole match is
    /// replaced). An invalid user pattern is an error naming it.
    pub fn new(extra: &[String]) -> Result<Redactor, EscalateError> {
        let mut patterns = Vec::with_capacity(BUILTIN.len() + extra.len());
        for &(kind, rx, how) in BUILTIN {
            patterns.push(Pattern {
                kind,
                rx: Regex::new(rx).map_err(|e| EscalateError::Config(format!("{kind}: {e}")))?,
                how,
            });
        }
        for (i, p) in extra.iter().enumerate() {
            let rx = Regex::new(p).map_err(|e| {
                EscalateError::Config(format!("escalate.redact.patterns[{i}]: {e}"))
            })?;
            patterns.push(Pattern {
                kind: "custom",
                rx,
                how: How::Whole,
            });
        }
        Ok(Redactor { patterns })
    }

    /// Replace every secret in `text`; `found` is called once per replacement with its kind.
    pub fn redact_with<'t>(
        &self,
        text: &'t str,
        found: &mut dyn FnMut(&'static str),
    ) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for p in &self.patterns {
            if !p.rx.is_match(&out) {
                continue;
            }
            let replaced = p.rx.replace_all(&out, |c: &Captures<'_>| {
                let whole = c.get(0).map_or("", |m| m.as_str());
                let mark = format!("[REDACTED:{}]", p.kind);
                match p.how {
                    How::Whole => {
                        found(p.kind);
                        mark
                    }
                    How::KeepPrefix => {
                        found(p.kind);
                        format!("{}{mark}", c.get(1).map_or("", |m| m.as_str()))
                    }
                    How::KeepAround => {
                        found(p.kind);
                        format!(
                            "{}{mark}{}",
                            c.get(1).map_or("", |m| m.as_str()),
                            c.get(3).map_or("", |m| m.as_str())
                        )
                    }
                    How::Luhn => {
                        if luhn(whole) {
                            found(p.kind);
                            mark
                        } else {
                            whole.to_string()
                        }
                    }
                }
            });
            if let Cow::Owned(s) = replaced {
                out = Cow::Owned(s);
            }
        }
        out
    }

    /// Replace every secret in `text`.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        self.redact_with(text, &mut |_| {})
    }
}

/// The Luhn checksum over the digits of `s` (separators ignored), for 13 to 19 digits.
fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> Redactor {
        Redactor::new(&["(?i)customer-\\d{6}".to_string()]).expect("patterns compile")
    }

    /// Each case: input, the secret that must vanish, the marker that must appear.
    const CASES: &[(&str, &str, &str)] = &[
        (
            "login failed for alice.smith+ops@example.co.uk from 10.0.0.1",
            "alice.smith+ops@example.co.uk",
            "[REDACTED:email]",
        ),
        (
            "Authorization: Bearer abc123DEF456ghi789.jkl",
            "abc123DEF456ghi789.jkl",
            "Bearer [REDACTED:bearer]",
        ),
        (
            "upstream said token q1w2e3r4t5y6u7i8 expired",
            "q1w2e3r4t5y6u7i8",
            "[REDACTED:bearer]",
        ),
        (
            "calling anthropic with sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "[REDACTED:api_key]",
        ),
        (
            "openai key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx rejected",
            "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx",
            "[REDACTED:api_key]",
        ),
        (
            "git clone failed with ghp_0123456789abcdefghijABCDEFGHIJklmnop",
            "ghp_0123456789abcdefghijABCDEFGHIJklmnop",
            "[REDACTED:api_key]",
        ),
        (
            "aws AKIAIOSFODNN7EXAMPLE denied",
            "AKIAIOSFODNN7EXAMPLE",
            "[REDACTED:api_key]",
        ),
        (
            "slack xoxb-123456789012-abcdefghijkl failed",
            "xoxb-123456789012-abcdefghijkl",
            "[REDACTED:api_key]",
        ),
        (
            "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "[REDACTED:api_key]",
        ),
        (
            "google AIzaSyA-1234567890abcdefghijklmnopqrstu ok",
            "AIzaSyA-1234567890abcdefghijklmnopqrstu",
            "[REDACTED:api_key]",
        ),
        (
            "connect postgres://app:s3cr3t-P4ss@db.internal:5432/orders failed",
            "s3cr3t-P4ss",
            "postgres://app:[REDACTED:url_password]@db.internal",
        ),
        (
            "config password=hunter2 user=bob",
            "hunter2",
            "password=[REDACTED:key_value]",
        ),
        (
            r#"{"api_key": "k-98765-zyx", "user": "bob"}"#,
            "k-98765-zyx",
            r#""api_key": "[REDACTED:key_value]"#,
        ),
        (
            "client_secret: abcd/efgh+ijkl",
            "abcd/efgh+ijkl",
            "client_secret: [REDACTED:key_value]",
        ),
        (
            "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk invalid",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "[REDACTED:jwt]",
        ),
        (
            "key: -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc\n-----END RSA PRIVATE KEY----- loaded",
            "MIIEowIBAAKCAQEA7",
            "key: [REDACTED:private_key] loaded",
        ),
        (
            "charge failed for card 4111 1111 1111 1111 amount 10",
            "4111 1111 1111 1111",
            "[REDACTED:card]",
        ),
        (
            "charge failed for 5500-0000-0000-0004",
            "5500-0000-0000-0004",
            "[REDACTED:card]",
        ),
        (
            "lookup Customer-123456 failed",
            "Customer-123456",
            "[REDACTED:custom]",
        ),
    ];

    #[test]
    fn every_secret_kind_is_redacted() {
        let r = r();
        for (input, secret, marker) in CASES {
            let out = r.redact(input);
            assert!(
                !out.contains(secret),
                "{secret:?} survived in {out:?} (input {input:?})"
            );
            assert!(out.contains(marker), "{marker:?} missing from {out:?}");
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        let r = r();
        for s in [
            "request 1234567890123 took 15 ms",
            "java.lang.NullPointerException at com.example.Foo.bar(Foo.java:42)",
            "GET /api/v1/users/42 returned 500",
            "connection refused to 10.0.0.12:5432",
            "block blk_-1608999687919862906 replicated",
        ] {
            assert_eq!(r.redact(s), s, "changed {s:?}");
        }
    }

    #[test]
    fn counts_each_replacement() {
        let r = r();
        let mut kinds = Vec::new();
        let out = r.redact_with("a@b.io and c@d.io password=x", &mut |k| kinds.push(k));
        assert_eq!(kinds, ["key_value", "email", "email"], "{out}");
    }

    #[test]
    fn bad_user_pattern_is_named() {
        let e = Redactor::new(&["(".to_string()]).expect_err("invalid regex");
        assert!(e.to_string().contains("escalate.redact.patterns[0]"), "{e}");
    }

    #[test]
    fn luhn_rejects_ordinary_numbers() {
        assert!(luhn("4111111111111111"));
        assert!(!luhn("4111111111111112"));
        assert!(!luhn("123"));
    }
}
