//! Wiring from incidents to tickets: every notification is written to the store's
//! `incoming` queue at once (durable before anything slow happens), then redacted,
//! classified once per fingerprint, and fanned out to each sink's outbox in one
//! transaction; one delivery task per sink drains its outbox.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::escalate::{CacheEntry, EscalateConfig, EscalateError, Escalator};
use crate::event::{Classified, Escalated, Incident, now_ms};
use crate::sink::outbox::{self, Action, Report};
use crate::sink::{AnySink, Sink, SinkError, Store, TicketsConfig};
use crate::telemetry::events;

/// Why the ticket path could not start.
#[derive(Debug, thiserror::Error)]
pub enum TicketsError {
    /// Escalation settings or secrets.
    #[error("escalate: {0}")]
    Escalate(#[from] EscalateError),
    /// Sink settings, secrets or the store.
    #[error("tickets: {0}")]
    Sink(#[from] SinkError),
}

/// The ticket path of one medic process.
pub struct Tickets {
    store: Arc<Store>,
    escalator: Arc<Escalator>,
    sinks: Vec<Arc<AnySink>>,
    cfg: TicketsConfig,
    wake_classify: Arc<Notify>,
    wake_sinks: Vec<Arc<Notify>>,
    news: tokio::sync::broadcast::Sender<TicketNews>,
}

/// A delivered ticket action, for live views (the API's event stream).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TicketNews {
    /// The sink.
    pub sink: &'static str,
    /// `create`, `comment`, `reopen`, `resolve`.
    pub action: &'static str,
}

/// The database file inside the state directory.
pub fn store_path(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("medic.db")
}

impl Tickets {
    /// Open the store in `state_dir`, build the classifier and the sinks (reading their
    /// secrets now) and load persisted classifications into the cache.
    pub fn open(
        state_dir: &Path,
        escalate: &EscalateConfig,
        tickets: &TicketsConfig,
    ) -> Result<Tickets, TicketsError> {
        let store = Arc::new(Store::open(
            &store_path(state_dir),
            &tickets.store.key_prefix,
        )?);
        let escalator = Escalator::new(escalate)?;
        let mut loaded = Vec::new();
        for (fp, entry) in store.classifications()? {
            match (
                u64::from_str_radix(&fp, 16),
                serde_json::from_str::<CacheEntry>(&entry),
            ) {
                (Ok(fp), Ok(e)) => loaded.push((fp, e)),
                _ => {
                    tracing::warn!(fingerprint = %fp, "unreadable cached classification; ignoring it")
                }
            }
        }
        escalator.preload(loaded);
        let sinks: Vec<Arc<AnySink>> = crate::sink::build(tickets, &store)?
            .into_iter()
            .map(Arc::new)
            .collect();
        let wake_sinks = sinks.iter().map(|_| Arc::new(Notify::new())).collect();
        Ok(Tickets {
            store,
            escalator: Arc::new(escalator),
            sinks,
            cfg: tickets.clone(),
            wake_classify: Arc::new(Notify::new()),
            wake_sinks,
            news: tokio::sync::broadcast::channel(256).0,
        })
    }

    /// The store (tickets for the API, outbox state).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Live ticket actions.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<TicketNews> {
        self.news.subscribe()
    }

    /// The classifier's version (`rules-1`, `anthropic:<model>`).
    pub fn classifier(&self) -> String {
        self.escalator.version()
    }

    /// Names of the configured sinks, in delivery order.
    pub fn sink_names(&self) -> Vec<&'static str> {
        self.sinks.iter().map(|s| s.name()).collect()
    }

    /// Queue one notification durably. Called on the pipeline thread: one small SQLite
    /// transaction, never a network call.
    pub fn submit(&self, inc: &Incident) {
        match self.store.enqueue_incoming(inc) {
            Ok(_) => self.wake_classify.notify_one(),
            Err(e) => {
                tracing::error!(incident = %inc.id, error = %e, "cannot queue an incident for ticketing")
            }
        }
    }

    /// Start the classification task and one delivery task per sink on `rt`; they stop
    /// when `stop` turns true.
    pub fn spawn(
        &self,
        rt: &tokio::runtime::Handle,
        stop: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        let names: Vec<&'static str> = self.sink_names();
        tasks.push(rt.spawn(classify_loop(
            Arc::clone(&self.store),
            Arc::clone(&self.escalator),
            names,
            Arc::clone(&self.wake_classify),
            self.wake_sinks.clone(),
            stop.clone(),
        )));
        let news = self.news.clone();
        let report: Report = Arc::new(move |sink: &str, r: Result<Action, &SinkError>| {
            let sink: &'static str = match sink {
                "store" => "store",
                "jira" => "jira",
                "github" => "github",
                _ => "webhook",
            };
            let (action, outcome) = match r {
                Ok(a) => (a.as_str(), "ok"),
                Err(e) if e.retryable() => ("error", "retry"),
                Err(_) => ("error", "dead"),
            };
            events::TicketAction {
                sink,
                action,
                outcome,
            }
            .emit();
            if matches!(
                r,
                Ok(Action::Created | Action::Commented | Action::Reopened | Action::Resolved)
            ) {
                // Nobody listening is fine.
                let _ = news.send(TicketNews { sink, action });
            }
        });
        for (sink, wake) in self.sinks.iter().zip(&self.wake_sinks) {
            tasks.push(rt.spawn(outbox::run(
                Arc::clone(sink),
                Arc::clone(&self.store),
                self.cfg.clone(),
                Arc::clone(wake),
                Arc::clone(&report),
                stop.clone(),
            )));
        }
        tasks
    }

    /// Publish outbox depths as gauges; returns the total waiting (incoming included).
    pub fn report_depths(&self) -> u64 {
        let Ok(mut d) = self.store.depths() else {
            return 0;
        };
        // A sink with an empty outbox reads 0, not absent.
        for name in self.sink_names() {
            if !d.iter().any(|(s, _)| s == name) {
                d.push((name.to_string(), Default::default()));
            }
        }
        let mut total = 0;
        for (sink, depth) in &d {
            total += depth.pending;
            events::OutboxDepth {
                sink,
                pending: depth.pending,
                dead: depth.dead,
            }
            .emit();
        }
        total
    }

    /// Wait until nothing is waiting (classified and delivered or dead), or `timeout`
    /// passes; returns how many actions are still waiting.
    pub async fn drain(&self, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let waiting = self.report_depths();
            if waiting == 0 || tokio::time::Instant::now() >= deadline {
                return waiting;
            }
            self.wake_classify.notify_one();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Take queued notifications in order, redact them, classify each distinct fingerprint
/// once (concurrently, within the LLM client's limit), and move them to the outboxes.
async fn classify_loop(
    store: Arc<Store>,
    escalator: Arc<Escalator>,
    sinks: Vec<&'static str>,
    wake: Arc<Notify>,
    wake_sinks: Vec<Arc<Notify>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = match store.incoming(64) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read queued incidents");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let mut redacted = Vec::with_capacity(batch.len());
        for (id, mut inc) in batch {
            escalator.redact_incident(&mut inc, &mut |kind| events::Redacted { kind }.emit());
            redacted.push((id, inc));
        }
        // One classification per fingerprint in the batch: the first notification's.
        let mut firsts: HashMap<u64, &Incident> = HashMap::new();
        for (_, inc) in &redacted {
            firsts.entry(inc.key.fingerprint.0).or_insert(inc);
        }
        let now = now_ms();
        let answers = futures_util::future::join_all(firsts.into_iter().map(|(fp, inc)| {
            let escalator = &escalator;
            async move { (fp, escalator.classify(inc, now).await) }
        }))
        .await;
        let provider = escalator.provider().unwrap_or("none");
        let mut by_fp: HashMap<u64, (Classified, Option<CacheEntry>)> = HashMap::new();
        for (fp, (classified, out)) in answers {
            for c in &out.calls {
                events::LlmRequest {
                    provider,
                    outcome: c.as_str(),
                }
                .emit();
            }
            if out.usage.input + out.usage.output > 0 {
                events::LlmTokens {
                    provider,
                    input: out.usage.input,
                    output: out.usage.output,
                }
                .emit();
            }
            if let Some(reason) = out.fallback {
                events::ClassifierFallback { reason }.emit();
            }
            let by = if out.cache_hit {
                "cache"
            } else if out.fresh.is_some() {
                "llm"
            } else {
                "rules"
            };
            events::Classified { by }.emit();
            by_fp.insert(fp, (classified, out.fresh));
        }
        for (id, inc) in redacted {
            let fp = inc.key.fingerprint.0;
            let Some((classified, fresh)) = by_fp.get_mut(&fp) else {
                continue;
            };
            // Persist a fresh LLM answer once, with the first notification that used it.
            let cache = fresh.take().and_then(|e| {
                serde_json::to_string(&e)
                    .ok()
                    .map(|j| (inc.key.fingerprint.to_string(), j))
            });
            let e = Escalated {
                incident: inc,
                classified: classified.clone(),
            };
            if let Err(err) = store.commit_escalated(id, &e, &sinks, cache) {
                tracing::error!(error = %err, "cannot move a classified incident to the outbox");
                tokio::time::sleep(Duration::from_millis(500)).await;
                break;
            }
        }
        for w in &wake_sinks {
            w.notify_one();
        }
    }
}
