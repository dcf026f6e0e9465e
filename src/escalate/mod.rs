//! Escalation: turns an incident into an [`ErrorClassification`](crate::event::ErrorClassification),
//! once per fingerprint.
//!
//! This stage owns redaction (nothing leaves the host unredacted), the rule-based
//! classifier, the LLM clients, the classification cache and the LLM budget. It runs only
//! after windowing, so its cost scales with incidents, never with lines. Whatever goes
//! wrong with the LLM (no endpoint, over budget, timeout, garbage), the rule classifier
//! answers and the reason is counted: an incident is never left unclassified.

pub mod config;
pub mod llm;
pub mod redact;
pub mod rules;

use std::num::NonZeroUsize;
use std::sync::Mutex;

pub use crate::event::Classified;
use crate::event::Incident;

pub use config::EscalateConfig;
use llm::{LlmClient, Usage};
use redact::Redactor;
use rules::RuleClassifier;

/// An escalation error.
#[derive(Debug, thiserror::Error)]
pub enum EscalateError {
    /// A setting is wrong or a secret is missing.
    #[error("{0}")]
    Config(String),
    /// The LLM budget refused the call.
    #[error("over the LLM budget")]
    Budget,
    /// The endpoint answered with an error status.
    #[error("LLM endpoint returned {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The provider's error message.
        message: String,
    },
    /// No answer: timeout or connection failure.
    #[error("LLM request failed: {0}")]
    Transport(String),
    /// The answer did not fit the schema, even after the repair request.
    #[error("LLM answer invalid: {0}")]
    InvalidAnswer(String),
}

impl EscalateError {
    /// The fallback reason label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            EscalateError::Config(_) => "config",
            EscalateError::Budget => "budget",
            EscalateError::Status { .. } => "status",
            EscalateError::Transport(_) => "transport",
            EscalateError::InvalidAnswer(_) => "invalid_answer",
        }
    }
}

/// One classification as kept in the cache and the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheEntry {
    /// The classifier version it is valid for.
    pub version: String,
    /// When it was made, ms since the epoch.
    pub at_ms: u64,
    /// The classification.
    pub classified: Classified,
}

/// What one [`Escalator::classify`] call did, for metrics and persistence.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Served from the cache.
    pub cache_hit: bool,
    /// A new cache entry to persist (fresh LLM answers only: rule answers are cheap).
    pub fresh: Option<CacheEntry>,
    /// HTTP outcomes of LLM requests made.
    pub calls: Vec<llm::CallOutcome>,
    /// Tokens used.
    pub usage: Usage,
    /// Why the fallback answered, when the LLM was configured.
    pub fallback: Option<&'static str>,
    /// Secrets replaced in the incident, by kind.
    pub redactions: Vec<&'static str>,
}

/// Redaction, classification, cache and budget.
#[derive(Debug)]
pub struct Escalator {
    redactor: Redactor,
    rules: RuleClassifier,
    llm: Option<LlmClient>,
    cache: Mutex<lru::LruCache<u64, CacheEntry>>,
    ttl_ms: u64,
    budget: Mutex<Budget>,
}

impl Escalator {
    /// Build from the configuration; reads the LLM key now.
    pub fn new(cfg: &EscalateConfig) -> Result<Escalator, EscalateError> {
        let llm = cfg.llm.as_ref().map(LlmClient::new).transpose()?;
        let cap = NonZeroUsize::new(cfg.cache.capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Escalator {
            redactor: Redactor::new(&cfg.redact.patterns)?,
            rules: RuleClassifier,
            llm,
            cache: Mutex::new(lru::LruCache::new(cap)),
            ttl_ms: cfg.cache.ttl.as_millis() as u64,
            budget: Mutex::new(Budget::new(
                cfg.budget.max_calls_per_hour,
                cfg.budget.max_tokens_per_day,
            )),
        })
    }

    /// The version classifications are cached under.
    pub fn version(&self) -> String {
        match &self.llm {
            Some(l) => l.version(),
            None => RuleClassifier::VERSION.to_string(),
        }
    }

    /// The LLM provider's name, if one is configured.
    pub fn provider(&self) -> Option<&'static str> {
        self.llm.as_ref().map(LlmClient::provider)
    }

    /// Free-form completion through the configured LLM, within the budget; `None` when no
    /// LLM is configured.
    pub async fn complete(
        &self,
        system: &str,
        user: &str,
    ) -> Option<Result<String, EscalateError>> {
        let llm = self.llm.as_ref()?;
        let now = crate::event::now_ms();
        let admit = || self.budget.lock().is_ok_and(|mut b| b.admit(now));
        let ans = llm.complete(system, user, &admit).await;
        if let Ok(mut b) = self.budget.lock() {
            b.spend(now, ans.usage.input + ans.usage.output);
        }
        Some(ans.result)
    }

    /// The redactor, for anything else that leaves the host.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Load persisted classifications (from the store) into the cache.
    pub fn preload(&self, entries: impl IntoIterator<Item = (u64, CacheEntry)>) {
        if let Ok(mut c) = self.cache.lock() {
            for (fp, e) in entries {
                c.put(fp, e);
            }
        }
    }

    /// Redact every text field of an incident in place.
    pub fn redact_incident(&self, inc: &mut Incident, found: &mut dyn FnMut(&'static str)) {
        let r = &self.redactor;
        let mut fix = |s: &mut String| {
            if let std::borrow::Cow::Owned(o) = r.redact_with(s, found) {
                *s = o;
            }
        };
        fix(&mut inc.template);
        for s in &mut inc.samples {
            fix(&mut s.text);
        }
        for (_, v) in &mut inc.labels {
            fix(v);
        }
    }

    /// Classify a redacted incident: the cache by fingerprint and version first, then the
    /// LLM within budget, then the rules.
    pub async fn classify(&self, inc: &Incident, now_ms: u64) -> (Classified, Outcome) {
        let mut out = Outcome::default();
        let version = self.version();
        let fp = inc.key.fingerprint.0;
        if let Ok(mut c) = self.cache.lock()
            && let Some(e) = c.get(&fp)
        {
            if e.version == version && now_ms.saturating_sub(e.at_ms) < self.ttl_ms {
                out.cache_hit = true;
                return (e.classified.clone(), out);
            }
            c.pop(&fp);
        }
        let Some(llm) = &self.llm else {
            let classified = Classified {
                classification: self.rules.classify(inc),
                classifier: RuleClassifier::VERSION.into(),
                fallback: None,
            };
            return (classified, out);
        };
        let admit = || self.budget.lock().is_ok_and(|mut b| b.admit(now_ms));
        let ans = llm.classify(inc, &admit).await;
        if let Ok(mut b) = self.budget.lock() {
            b.spend(now_ms, ans.usage.input + ans.usage.output);
        }
        out.calls = ans.calls;
        out.usage = ans.usage;
        match ans.result {
            Ok(c) => {
                let classified = Classified {
                    classification: c,
                    classifier: version.clone(),
                    fallback: None,
                };
                let entry = CacheEntry {
                    version,
                    at_ms: now_ms,
                    classified: classified.clone(),
                };
                if let Ok(mut c) = self.cache.lock() {
                    c.put(fp, entry.clone());
                }
                out.fresh = Some(entry);
                (classified, out)
            }
            Err(e) => {
                tracing::warn!(incident = %inc.id, error = %e, "LLM classification failed; using the rule classifier");
                out.fallback = Some(e.reason());
                let classified = Classified {
                    classification: self.rules.classify(inc),
                    classifier: RuleClassifier::VERSION.into(),
                    fallback: Some(e.to_string()),
                };
                (classified, out)
            }
        }
    }
}

/// LLM spending: calls in a rolling hour and tokens per UTC day.
#[derive(Debug)]
struct Budget {
    max_calls: u32,
    max_tokens: u64,
    calls: std::collections::VecDeque<u64>,
    day: u64,
    tokens: u64,
}

impl Budget {
    fn new(max_calls: u32, max_tokens: u64) -> Budget {
        Budget {
            max_calls,
            max_tokens,
            calls: std::collections::VecDeque::new(),
            day: 0,
            tokens: 0,
        }
    }

    fn roll(&mut self, now_ms: u64) {
        while self.calls.front().is_some_and(|&t| t + 3_600_000 <= now_ms) {
            self.calls.pop_front();
        }
        let day = now_ms / 86_400_000;
        if day != self.day {
            self.day = day;
            self.tokens = 0;
        }
    }

    /// Admit one call, or refuse it.
    fn admit(&mut self, now_ms: u64) -> bool {
        self.roll(now_ms);
        if self.calls.len() as u64 >= u64::from(self.max_calls) || self.tokens >= self.max_tokens {
            return false;
        }
        self.calls.push_back(now_ms);
        true
    }

    fn spend(&mut self, now_ms: u64, tokens: u64) {
        self.roll(now_ms);
        self.tokens += tokens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_limits_calls_per_hour_and_tokens_per_day() {
        let mut b = Budget::new(2, 100);
        assert!(b.admit(0));
        assert!(b.admit(1));
        assert!(!b.admit(2), "third call in the hour");
        assert!(b.admit(3_600_000), "the first call left the window");
        let mut b = Budget::new(100, 100);
        assert!(b.admit(0));
        b.spend(0, 100);
        assert!(!b.admit(1), "tokens spent for the day");
        assert!(b.admit(86_400_000), "a new day");
    }

    #[tokio::test]
    async fn rules_answer_without_an_llm_and_cache_entries_expire() {
        let cfg = EscalateConfig::default();
        let e = Escalator::new(&cfg).expect("escalator");
        let inc = rules::tests::incident(
            "dial <*>: connection refused",
            "x",
            crate::event::Severity::High,
            3,
        );
        let (c, out) = e.classify(&inc, 0).await;
        assert_eq!(c.classifier, RuleClassifier::VERSION);
        assert!(out.fresh.is_none() && out.calls.is_empty() && out.fallback.is_none());
        // A preloaded entry for this version is served until its TTL.
        let entry = CacheEntry {
            version: e.version(),
            at_ms: 0,
            classified: Classified {
                classification: c.classification.clone(),
                classifier: "cached".into(),
                fallback: None,
            },
        };
        e.preload([(inc.key.fingerprint.0, entry)]);
        let (c2, out2) = e.classify(&inc, 1000).await;
        assert!(out2.cache_hit);
        assert_eq!(c2.classifier, "cached");
        let (c3, out3) = e.classify(&inc, cfg.cache.ttl.as_millis() as u64 + 1).await;
        assert!(!out3.cache_hit, "expired");
        assert_eq!(c3.classifier, RuleClassifier::VERSION);
    }

    #[test]
    fn incidents_are_redacted_in_every_text_field() {
        let e = Escalator::new(&EscalateConfig::default()).expect("escalator");
        let mut inc = rules::tests::incident(
            "login <*> password=abc",
            "user bob@example.com password=abc",
            crate::event::Severity::High,
            1,
        );
        inc.labels.push(("owner".into(), "ops@example.com".into()));
        let mut n = 0;
        e.redact_incident(&mut inc, &mut |_| n += 1);
        let s = serde_json::to_string(&inc).expect("json");
        assert!(
            !s.contains("bob@example.com") && !s.contains("=abc") && !s.contains("ops@example.com"),
            "{s}"
        );
        assert_eq!(n, 4);
    }
}
