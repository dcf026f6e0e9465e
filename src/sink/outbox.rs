//! Delivery from the durable outbox: one worker per sink takes that sink's rows in order,
//! decides the action against the sink's own state (upsert by fingerprint, cooldown,
//! reopen on regression, resolve when quiet), and retries with backoff until the sink
//! acknowledges. A sink that is down holds back only its own queue, never the pipeline.

use std::sync::Arc;
use std::time::Duration;

use super::render::{note_body, ticket_body};
use super::store::{OutboxRow, SinkRef, Store};
use super::{AnySink, NewTicket, Note, Sink, SinkError, TicketRef, TicketStatus, TicketsConfig};
use crate::event::{Escalated, IncidentState, now_ms};

/// What a delivery did, for metrics and the outbox's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A ticket was created.
    Created,
    /// A comment was added.
    Commented,
    /// A done ticket was reopened.
    Reopened,
    /// The ticket was resolved.
    Resolved,
    /// Nothing to do: inside the comment cooldown.
    Cooldown,
    /// Nothing to do: a resolve for a ticket that is not open, or resolving is off.
    Skipped,
    /// A retry found the action already applied.
    AlreadyDone,
}

impl Action {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "create",
            Action::Commented => "comment",
            Action::Reopened => "reopen",
            Action::Resolved => "resolve",
            Action::Cooldown => "cooldown",
            Action::Skipped => "skip",
            Action::AlreadyDone => "already_done",
        }
    }
}

/// Labels every ticket gets. The model never chooses them: they come from the
/// classification's enum and the configuration.
pub fn labels(e: &Escalated, cfg: &TicketsConfig) -> Vec<String> {
    let mut l = vec![
        "AI-Fix".to_string(),
        "auto-detected".to_string(),
        e.classified.classification.error_type.as_str().to_string(),
        super::fingerprint_label(&e.incident.key.fingerprint.to_string()),
    ];
    if e.incident.regression {
        l.push("regression".into());
    }
    l.extend(cfg.labels.iter().cloned());
    l.dedup();
    l
}

/// Deliver one outbox row to its sink. Safe to repeat: a retried row finds the ticket it
/// may already have created (by the store's record, else by label) and checks for its
/// own comment before posting again.
pub async fn deliver(
    sink: &AnySink,
    store: &Store,
    row: &OutboxRow,
    cfg: &TicketsConfig,
) -> Result<Action, SinkError> {
    let e = &row.payload;
    let inc = &e.incident;
    let fp = inc.key.fingerprint.to_string();
    let name = sink.name();
    let local = store.sink_ref(name, &fp)?;
    let maybe_sent = row.attempts > 1;
    let current: Option<TicketRef> = match (&local, sink.stateless()) {
        (Some(l), true) => Some(TicketRef {
            key: l.key.clone(),
            status: l.status,
            url: None,
        }),
        (None, true) => None,
        // The store's record first: label search in remote trackers is eventually
        // consistent, and a ticket created a second ago may not be found yet.
        (Some(l), false) => match sink.get(&l.key).await? {
            Some(t) => Some(t),
            None => sink.find_by_fingerprint(&fp).await?,
        },
        (None, false) => sink.find_by_fingerprint(&fp).await?,
    };
    let note = |idem: &str| Note {
        body: note_body(e, idem),
        idem: idem.to_string(),
        count: inc.count,
    };
    let record = |key: &str, status: TicketStatus, last_note_ms: u64| {
        store.set_sink_ref(
            name,
            &fp,
            &SinkRef {
                key: key.to_string(),
                status,
                last_note_ms,
            },
        )
    };
    let last_note = local.as_ref().map_or(0, |l| l.last_note_ms);

    if inc.state == IncidentState::Resolved {
        let Some(t) = current.filter(|_| cfg.resolve_when_quiet) else {
            return Ok(Action::Skipped);
        };
        // Sinks change the status first and add the note second, so a retry that finds
        // the ticket done but without this action's note finishes the resolve; a done
        // ticket that is not ours to finish stays as it is.
        let finishing = t.status == TicketStatus::Resolved
            && maybe_sent
            && !sink.has_note(&t.key, &row.idem).await?;
        if t.status == TicketStatus::Resolved && !finishing {
            return Ok(Action::Skipped);
        }
        if finishing {
            sink.comment(&t.key, &note(&row.idem)).await?;
        } else {
            sink.resolve(&t.key, &note(&row.idem)).await?;
        }
        record(&t.key, TicketStatus::Resolved, last_note)?;
        return Ok(Action::Resolved);
    }

    match current {
        None => {
            let link = cfg.public_url.as_deref().filter(|_| name != "store");
            let t = NewTicket {
                fingerprint: fp.clone(),
                title: e.classified.classification.title.clone(),
                body: ticket_body(e, &row.idem, link),
                labels: labels(e, cfg),
                severity: e.classified.classification.severity.as_str(),
                escalated: e.clone(),
                idem: row.idem.clone(),
            };
            let created = sink.create(&t).await?;
            record(&created.key, TicketStatus::Open, inc.last_seen_ms)?;
            Ok(Action::Created)
        }
        Some(t) if t.status == TicketStatus::Resolved => {
            if maybe_sent && sink.has_note(&t.key, &row.idem).await? {
                record(&t.key, TicketStatus::Open, inc.last_seen_ms)?;
                return Ok(Action::AlreadyDone);
            }
            sink.reopen(&t.key, &note(&row.idem)).await?;
            record(&t.key, TicketStatus::Open, inc.last_seen_ms)?;
            Ok(Action::Reopened)
        }
        Some(t) => {
            // A created or reopened notification on an open ticket is a first sight for
            // this incident (or a retry): always worth a comment. Updates wait out the
            // cooldown, counted in event time so replays behave like live runs.
            let cooldown = cfg.cooldown.as_millis() as u64;
            if inc.state == IncidentState::Updated
                && local.is_some()
                && inc.last_seen_ms < last_note.saturating_add(cooldown)
            {
                // No comment, but the ticket's count stays the incident's: a burst that
                // outlasted group_wait must not leave the ticket short until the cooldown.
                sink.touch(&t.key, inc.count).await?;
                return Ok(Action::Cooldown);
            }
            if maybe_sent && sink.has_note(&t.key, &row.idem).await? {
                record(&t.key, TicketStatus::Open, inc.last_seen_ms)?;
                return Ok(Action::AlreadyDone);
            }
            sink.comment(&t.key, &note(&row.idem)).await?;
            record(&t.key, TicketStatus::Open, inc.last_seen_ms)?;
            Ok(Action::Commented)
        }
    }
}

/// Told every delivery outcome: the sink name and the action or the error.
pub type Report = Arc<dyn Fn(&str, Result<Action, &SinkError>) + Send + Sync>;

/// One sink's delivery loop: until `stop` fires, deliver rows in order, waiting on
/// `wake` when the queue is empty and sleeping out backoffs. `report` is told every
/// outcome.
pub async fn run(
    sink: Arc<AnySink>,
    store: Arc<Store>,
    cfg: TicketsConfig,
    wake: Arc<tokio::sync::Notify>,
    report: Report,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let name = sink.name();
    loop {
        if *stop.borrow() {
            return;
        }
        let row = match store.next_outbox(name) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(sink = name, error = %e, "cannot read the outbox");
                None
            }
        };
        let Some(row) = row else {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        let now = now_ms();
        if row.next_ms > now {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(row.next_ms - now)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        if let Err(e) = store.begin_attempt(row.id) {
            tracing::error!(sink = name, error = %e, "cannot record a delivery attempt");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let row = OutboxRow {
            attempts: row.attempts + 1,
            ..row
        };
        let result = deliver(&sink, &store, &row, &cfg).await;
        match &result {
            Ok(a) => {
                tracing::info!(sink = name, action = a.as_str(), incident = %row.payload.incident.id, "ticket action");
                if let Err(e) = store.ack(row.id, a.as_str()) {
                    tracing::error!(sink = name, error = %e, "cannot acknowledge an outbox row");
                }
            }
            Err(e) if e.retryable() => {
                let wait = backoff(&cfg, row.attempts);
                tracing::warn!(sink = name, error = %e, attempt = row.attempts, retry_in = ?wait, "ticket action failed; will retry");
                if let Err(e) =
                    store.retry(row.id, now_ms() + wait.as_millis() as u64, &e.to_string())
                {
                    tracing::error!(sink = name, error = %e, "cannot reschedule an outbox row");
                }
            }
            Err(e) => {
                tracing::error!(sink = name, error = %e, incident = %row.payload.incident.id, "ticket action rejected; kept in the outbox as dead");
                if let Err(e) = store.dead(row.id, &e.to_string()) {
                    tracing::error!(sink = name, error = %e, "cannot mark an outbox row dead");
                }
            }
        }
        report(name, result.as_ref().map(|a| *a));
    }
}

/// Exponential backoff from `retry_initial`, capped at `retry_max`, jittered to between
/// half and the whole step so sinks recovering together are not hit in lockstep.
pub fn backoff(cfg: &TicketsConfig, attempt: u32) -> Duration {
    let step = cfg
        .retry_initial
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(cfg.retry_max);
    crate::event::duration::jitter(step)
}
