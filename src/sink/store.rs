//! The embedded store: one SQLite database in the state directory holding the default
//! ticket system (`MEDIC-1`, with status, history and comments), the durable outbox, the
//! notifications waiting for classification, the classification cache and each sink's
//! record of which ticket a fingerprint went to.
//!
//! Every write is a transaction; the database runs in WAL mode with `synchronous=FULL`
//! so an acknowledged write survives a crash or power loss.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use super::{NewTicket, Note, Sink, SinkError, TicketRef, TicketStatus};
use crate::event::{Escalated, Incident, now_ms};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    fingerprint TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    error_type TEXT NOT NULL,
    service TEXT NOT NULL,
    labels TEXT NOT NULL,
    body TEXT NOT NULL,
    escalated TEXT NOT NULL,
    regression INTEGER NOT NULL DEFAULT 0,
    count INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    resolved_ms INTEGER
);
CREATE INDEX IF NOT EXISTS tickets_fp ON tickets(fingerprint);
CREATE TABLE IF NOT EXISTS ticket_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL REFERENCES tickets(id),
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    idem TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS ticket_events_ticket ON ticket_events(ticket_id);
CREATE TABLE IF NOT EXISTS incoming (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idem TEXT NOT NULL UNIQUE,
    incident TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    idem TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_ms INTEGER NOT NULL,
    done_ms INTEGER,
    outcome TEXT,
    UNIQUE(sink, idem)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(sink, state, id);
CREATE INDEX IF NOT EXISTS outbox_idem ON outbox(idem);
CREATE TABLE IF NOT EXISTS sink_refs (
    sink TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    last_note_ms INTEGER NOT NULL,
    PRIMARY KEY (sink, fingerprint)
);
CREATE TABLE IF NOT EXISTS classifications (
    fingerprint TEXT PRIMARY KEY,
    entry TEXT NOT NULL
);
";

/// Outbox rows kept after delivery, so a notification replayed later is recognised and
/// not sent twice.
const DONE_KEPT: i64 = 100_000;

/// One outbox row.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// Row id: delivery order per sink.
    pub id: i64,
    /// The sink it is for.
    pub sink: String,
    /// Idempotency key (incident id and action).
    pub idem: String,
    /// What to deliver.
    pub payload: Escalated,
    /// Attempts started so far (an attempt is recorded before it is sent).
    pub attempts: u32,
    /// Not before this time, ms since the epoch.
    pub next_ms: u64,
}

/// An outbox row as inspected (tests, the API).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutboxEntry {
    /// Idempotency key.
    pub idem: String,
    /// `pending`, `done` or `dead`.
    pub state: String,
    /// Attempts started.
    pub attempts: u32,
    /// The action taken, once done.
    pub outcome: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
}

/// A sink's record of the ticket a fingerprint went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRef {
    /// The sink's ticket key.
    pub key: String,
    /// Status as last written by medic.
    pub status: TicketStatus,
    /// Event time of the last comment (or the creation), ms.
    pub last_note_ms: u64,
}

/// A ticket as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TicketView {
    /// `MEDIC-12`.
    pub key: String,
    /// Fingerprint (hex).
    pub fingerprint: String,
    /// Title.
    pub title: String,
    /// `open` or `resolved`.
    pub status: String,
    /// Severity.
    pub severity: String,
    /// Error type.
    pub error_type: String,
    /// Service.
    pub service: String,
    /// Labels.
    pub labels: Vec<String>,
    /// Whether it was ever reopened.
    pub regression: bool,
    /// Records of the bug so far, as of the latest notification.
    pub count: u64,
    /// Created, ms.
    pub created_ms: u64,
    /// Last change, ms.
    pub updated_ms: u64,
    /// Resolved at, ms.
    pub resolved_ms: Option<u64>,
    /// Body (Markdown), in the detail view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// History: created, comments, reopen, resolve; in the detail view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<TicketEvent>>,
}

/// One entry of a ticket's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TicketEvent {
    /// When, ms.
    pub at_ms: u64,
    /// `created`, `comment`, `reopened`, `resolved`.
    pub kind: String,
    /// Markdown.
    pub body: String,
}

/// Outbox state for one sink.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxDepth {
    /// Waiting to be sent.
    pub pending: u64,
    /// Given up on (rejected as malformed); kept for inspection.
    pub dead: u64,
}

/// The embedded store.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    prefix: String,
}

fn status_of(s: &str) -> TicketStatus {
    if s == "resolved" {
        TicketStatus::Resolved
    } else {
        TicketStatus::Open
    }
}

impl Store {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path, key_prefix: &str) -> Result<Store, SinkError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| SinkError::Store(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| SinkError::Store(format!("cannot open {}: {e}", path.display())))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| SinkError::Store(format!("{}: {e}", path.display())))?;
        // Databases from before the count column.
        let has_count: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('tickets') WHERE name = 'count'")?
            .exists([])?;
        if !has_count {
            conn.execute_batch("ALTER TABLE tickets ADD COLUMN count INTEGER NOT NULL DEFAULT 0")?;
        }
        Ok(Store {
            conn: Mutex::new(conn),
            prefix: key_prefix.to_string(),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SinkError> {
        let mut c = self
            .conn
            .lock()
            .map_err(|_| SinkError::Store("store lock poisoned".into()))?;
        f(&mut c).map_err(SinkError::from)
    }

    /// Whether the database accepts writes (for readiness).
    pub fn writable(&self) -> bool {
        self.with(|c| c.execute_batch("BEGIN IMMEDIATE; ROLLBACK;"))
            .is_ok()
    }

    // ---- incoming: notifications waiting for classification ----

    /// Record a notification durably; `false` if this exact notification was seen before.
    pub fn enqueue_incoming(&self, inc: &Incident) -> Result<bool, SinkError> {
        let json = serde_json::to_string(inc).map_err(|e| SinkError::Store(e.to_string()))?;
        let idem = super::idem_key(inc);
        self.with(|c| {
            // Seen before if still waiting, or already turned into outbox rows.
            let done: bool = c
                .query_row(
                    "SELECT 1 FROM outbox WHERE idem = ?1 LIMIT 1",
                    [&idem],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if done {
                return Ok(false);
            }
            let n = c.execute(
                "INSERT OR IGNORE INTO incoming (idem, incident, created_ms) VALUES (?1, ?2, ?3)",
                params![idem, json, now_ms() as i64],
            )?;
            Ok(n == 1)
        })
    }

    /// Up to `limit` waiting notifications, oldest first.
    pub fn incoming(&self, limit: usize) -> Result<Vec<(i64, Incident)>, SinkError> {
        let rows: Vec<(i64, String)> = self.with(|c| {
            let mut st = c.prepare("SELECT id, incident FROM incoming ORDER BY id LIMIT ?1")?;
            let rows = st
                .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, json) in rows {
            match serde_json::from_str(&json) {
                Ok(inc) => out.push((id, inc)),
                Err(e) => {
                    // Written by this program; unreadable means a format change. Keep the
                    // row out of the way rather than block the queue behind it.
                    tracing::error!(id, error = %e, "unreadable queued incident; skipping it");
                    self.with(|c| c.execute("DELETE FROM incoming WHERE id = ?1", [id]))?;
                }
            }
        }
        Ok(out)
    }

    /// Move a classified notification to the outbox of each sink, and persist a fresh
    /// classification, in one transaction.
    pub fn commit_escalated(
        &self,
        incoming_id: i64,
        e: &Escalated,
        sinks: &[&str],
        cache: Option<(String, String)>,
    ) -> Result<(), SinkError> {
        let payload = serde_json::to_string(e).map_err(|e| SinkError::Store(e.to_string()))?;
        let idem = super::idem_key(&e.incident);
        let now = now_ms() as i64;
        self.with(|c| {
            let tx = c.transaction()?;
            for s in sinks {
                tx.execute(
                    "INSERT OR IGNORE INTO outbox (sink, idem, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![s, idem, payload, now],
                )?;
            }
            if let Some((fp, entry)) = cache {
                tx.execute(
                    "INSERT OR REPLACE INTO classifications (fingerprint, entry) VALUES (?1, ?2)",
                    params![fp, entry],
                )?;
            }
            tx.execute("DELETE FROM incoming WHERE id = ?1", [incoming_id])?;
            tx.commit()
        })
    }

    /// Persisted classifications: (fingerprint hex, entry JSON).
    pub fn classifications(&self) -> Result<Vec<(String, String)>, SinkError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT fingerprint, entry FROM classifications")?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    // ---- outbox ----

    /// The next row for a sink in delivery order, due or not.
    pub fn next_outbox(&self, sink: &str) -> Result<Option<OutboxRow>, SinkError> {
        let row: Option<(i64, String, String, u32, i64)> = self.with(|c| {
            c.query_row(
                "SELECT id, idem, payload, attempts, next_ms FROM outbox
                 WHERE sink = ?1 AND state = 'pending' ORDER BY id LIMIT 1",
                [sink],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
        })?;
        let Some((id, idem, payload, attempts, next_ms)) = row else {
            return Ok(None);
        };
        match serde_json::from_str(&payload) {
            Ok(payload) => Ok(Some(OutboxRow {
                id,
                sink: sink.to_string(),
                idem,
                payload,
                attempts,
                next_ms: next_ms.max(0) as u64,
            })),
            Err(e) => {
                self.dead(id, &format!("unreadable payload: {e}"))?;
                self.next_outbox(sink)
            }
        }
    }

    /// Record that an attempt is starting, before anything is sent: after a crash the
    /// row shows it may have been sent, and delivery checks before acting again.
    pub fn begin_attempt(&self, id: i64) -> Result<(), SinkError> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?1",
                [id],
            )
        })
        .map(|_| ())
    }

    /// The action was acknowledged.
    pub fn ack(&self, id: i64, outcome: &str) -> Result<(), SinkError> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET state = 'done', done_ms = ?2, outcome = ?3, last_error = NULL WHERE id = ?1",
                params![id, now_ms() as i64, outcome],
            )?;
            // Bound the history kept for deduplication.
            c.execute(
                "DELETE FROM outbox WHERE state = 'done' AND id <= (SELECT MAX(id) FROM outbox) - ?1",
                [DONE_KEPT],
            )
        })
        .map(|_| ())
    }

    /// The attempt failed; try again at `next_ms`.
    pub fn retry(&self, id: i64, next_ms: u64, error: &str) -> Result<(), SinkError> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET next_ms = ?2, last_error = ?3 WHERE id = ?1",
                params![id, next_ms as i64, error],
            )
        })
        .map(|_| ())
    }

    /// The remote rejected the action for good; keep it, out of the queue.
    pub fn dead(&self, id: i64, error: &str) -> Result<(), SinkError> {
        self.with(|c| {
            c.execute(
                "UPDATE outbox SET state = 'dead', last_error = ?2, done_ms = ?3 WHERE id = ?1",
                params![id, error, now_ms() as i64],
            )
        })
        .map(|_| ())
    }

    /// Pending and dead rows per sink, plus notifications waiting for classification
    /// under the sink name `classify`.
    pub fn depths(&self) -> Result<Vec<(String, OutboxDepth)>, SinkError> {
        self.with(|c| {
            let mut out: std::collections::BTreeMap<String, OutboxDepth> = Default::default();
            let mut st = c.prepare(
                "SELECT sink, state, COUNT(*) FROM outbox WHERE state != 'done' GROUP BY sink, state",
            )?;
            let rows = st.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
            })?;
            for r in rows {
                let (sink, state, n) = r?;
                let d = out.entry(sink).or_default();
                if state == "dead" {
                    d.dead = n as u64;
                } else {
                    d.pending = n as u64;
                }
            }
            let waiting: i64 = c.query_row("SELECT COUNT(*) FROM incoming", [], |r| r.get(0))?;
            out.entry("classify".into()).or_default().pending = waiting as u64;
            Ok(out.into_iter().collect())
        })
    }

    /// Every outbox row of one sink, in delivery order.
    pub fn outbox_rows(&self, sink: &str) -> Result<Vec<OutboxEntry>, SinkError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT idem, state, attempts, outcome, last_error FROM outbox WHERE sink = ?1 ORDER BY id",
            )?;
            let rows = st
                .query_map([sink], |r| {
                    Ok(OutboxEntry {
                        idem: r.get(0)?,
                        state: r.get(1)?,
                        attempts: r.get(2)?,
                        outcome: r.get(3)?,
                        last_error: r.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    // ---- per-sink records ----

    /// What a sink was last told about a fingerprint.
    pub fn sink_ref(&self, sink: &str, fp: &str) -> Result<Option<SinkRef>, SinkError> {
        self.with(|c| {
            c.query_row(
                "SELECT key, status, last_note_ms FROM sink_refs WHERE sink = ?1 AND fingerprint = ?2",
                params![sink, fp],
                |r| {
                    Ok(SinkRef {
                        key: r.get(0)?,
                        status: status_of(&r.get::<_, String>(1)?),
                        last_note_ms: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                },
            )
            .optional()
        })
    }

    /// Record what a sink now holds for a fingerprint.
    pub fn set_sink_ref(&self, sink: &str, fp: &str, r: &SinkRef) -> Result<(), SinkError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO sink_refs (sink, fingerprint, key, status, last_note_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![sink, fp, r.key, r.status.as_str(), r.last_note_ms as i64],
            )
        })
        .map(|_| ())
    }

    // ---- the ticket system ----

    /// Tickets, newest change first, optionally by status.
    pub fn tickets(
        &self,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TicketView>, SinkError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT key, fingerprint, title, status, severity, error_type, service, labels,
                        regression, created_ms, updated_ms, resolved_ms, count
                 FROM tickets WHERE (?1 IS NULL OR status = ?1) ORDER BY updated_ms DESC, id DESC LIMIT ?2",
            )?;
            let rows = st
                .query_map(params![status, limit as i64], view)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// One ticket with its body and history.
    pub fn ticket(&self, key: &str) -> Result<Option<TicketView>, SinkError> {
        self.with(|c| {
            let t = c
                .query_row(
                    "SELECT key, fingerprint, title, status, severity, error_type, service, labels,
                            regression, created_ms, updated_ms, resolved_ms, count, body, id
                     FROM tickets WHERE key = ?1",
                    [key],
                    |r| {
                        let mut v = view(r)?;
                        v.body = Some(r.get(13)?);
                        Ok((v, r.get::<_, i64>(14)?))
                    },
                )
                .optional()?;
            let Some((mut v, id)) = t else {
                return Ok(None);
            };
            let mut st = c.prepare(
                "SELECT at_ms, kind, body FROM ticket_events WHERE ticket_id = ?1 ORDER BY id",
            )?;
            let h = st
                .query_map([id], |r| {
                    Ok(TicketEvent {
                        at_ms: r.get::<_, i64>(0)?.max(0) as u64,
                        kind: r.get(1)?,
                        body: r.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            v.history = Some(h);
            Ok(Some(v))
        })
    }

    fn event(
        &self,
        key: &str,
        kind: &str,
        note: &Note,
        status: Option<TicketStatus>,
        regression: bool,
    ) -> Result<(), SinkError> {
        let (body, idem) = (&note.body, note.idem.as_str());
        let now = now_ms() as i64;
        let changed = self.with(|c| {
            let tx = c.transaction()?;
            let id: Option<i64> = tx
                .query_row("SELECT id FROM tickets WHERE key = ?1", [key], |r| r.get(0))
                .optional()?;
            let Some(id) = id else {
                return Ok(None);
            };
            // The idempotency key is unique: a retried action adds nothing.
            let n = tx.execute(
                "INSERT OR IGNORE INTO ticket_events (ticket_id, at_ms, kind, body, idem) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, now, kind, body.markdown(), idem],
            )?;
            if n == 1 {
                tx.execute(
                    "UPDATE tickets SET updated_ms = ?2, count = MAX(count, ?3) WHERE id = ?1",
                    params![id, now, note.count as i64],
                )?;
                if let Some(s) = status {
                    tx.execute(
                        "UPDATE tickets SET status = ?2, resolved_ms = CASE WHEN ?2 = 'resolved' THEN ?3 ELSE NULL END WHERE id = ?1",
                        params![id, s.as_str(), now],
                    )?;
                }
                if regression {
                    tx.execute("UPDATE tickets SET regression = 1 WHERE id = ?1", [id])?;
                }
            }
            tx.commit()?;
            Ok(Some(()))
        })?;
        changed.ok_or_else(|| SinkError::Status {
            sink: "store",
            what: "update",
            status: 404,
            message: format!("no ticket {key}"),
        })
    }

    fn find(&self, fp: &str) -> Result<Option<TicketRef>, SinkError> {
        self.with(|c| {
            c.query_row(
                "SELECT key, status FROM tickets WHERE fingerprint = ?1
                 ORDER BY (status = 'open') DESC, id DESC LIMIT 1",
                [fp],
                |r| {
                    Ok(TicketRef {
                        key: r.get(0)?,
                        status: status_of(&r.get::<_, String>(1)?),
                        url: None,
                    })
                },
            )
            .optional()
        })
    }
}

fn view(r: &rusqlite::Row<'_>) -> rusqlite::Result<TicketView> {
    let labels: String = r.get(7)?;
    Ok(TicketView {
        key: r.get(0)?,
        fingerprint: r.get(1)?,
        title: r.get(2)?,
        status: r.get(3)?,
        severity: r.get(4)?,
        error_type: r.get(5)?,
        service: r.get(6)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        regression: r.get::<_, i64>(8)? != 0,
        created_ms: r.get::<_, i64>(9)?.max(0) as u64,
        updated_ms: r.get::<_, i64>(10)?.max(0) as u64,
        resolved_ms: r.get::<_, Option<i64>>(11)?.map(|v| v.max(0) as u64),
        count: r.get::<_, i64>(12)?.max(0) as u64,
        body: None,
        history: None,
    })
}

impl Sink for std::sync::Arc<Store> {
    fn name(&self) -> &'static str {
        "store"
    }

    async fn create(&self, t: &NewTicket) -> Result<TicketRef, SinkError> {
        let now = now_ms() as i64;
        let c = &t.escalated.classified.classification;
        let labels =
            serde_json::to_string(&t.labels).map_err(|e| SinkError::Store(e.to_string()))?;
        let escalated =
            serde_json::to_string(&t.escalated).map_err(|e| SinkError::Store(e.to_string()))?;
        let prefix = self.prefix.clone();
        let key = self.with(|conn| {
            let tx = conn.transaction()?;
            // An earlier attempt of this very action may have committed already.
            let existing: Option<String> = tx
                .query_row(
                    "SELECT t.key FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id WHERE e.idem = ?1",
                    [&t.idem],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(k) = existing {
                return Ok(k);
            }
            tx.execute(
                "INSERT INTO tickets (key, fingerprint, title, status, severity, error_type, service,
                        labels, body, escalated, regression, count, created_ms, updated_ms)
                 VALUES ('', ?1, ?2, 'open', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?11, ?10, ?10)",
                params![
                    t.fingerprint,
                    t.title,
                    t.severity,
                    c.error_type.as_str(),
                    t.escalated.incident.key.service,
                    labels,
                    t.body.markdown(),
                    escalated,
                    t.escalated.incident.regression as i64,
                    now,
                    t.escalated.incident.count as i64
                ],
            )?;
            let id = tx.last_insert_rowid();
            let key = format!("{prefix}-{id}");
            tx.execute("UPDATE tickets SET key = ?2 WHERE id = ?1", params![id, key])?;
            tx.execute(
                "INSERT INTO ticket_events (ticket_id, at_ms, kind, body, idem) VALUES (?1, ?2, 'created', ?3, ?4)",
                params![id, now, t.title, t.idem],
            )?;
            tx.commit()?;
            Ok(key)
        })?;
        Ok(TicketRef {
            key,
            status: TicketStatus::Open,
            url: None,
        })
    }

    async fn find_by_fingerprint(&self, fp: &str) -> Result<Option<TicketRef>, SinkError> {
        self.find(fp)
    }

    async fn get(&self, key: &str) -> Result<Option<TicketRef>, SinkError> {
        self.with(|c| {
            c.query_row(
                "SELECT key, status FROM tickets WHERE key = ?1",
                [key],
                |r| {
                    Ok(TicketRef {
                        key: r.get(0)?,
                        status: status_of(&r.get::<_, String>(1)?),
                        url: None,
                    })
                },
            )
            .optional()
        })
    }

    async fn touch(&self, key: &str, count: u64) -> Result<(), SinkError> {
        // MAX: a retried or reordered touch never lowers the count.
        self.with(|c| {
            c.execute(
                "UPDATE tickets SET count = MAX(count, ?2) WHERE key = ?1",
                params![key, count as i64],
            )
        })
        .map(|_| ())
    }

    async fn comment(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        self.event(key, "comment", note, None, false)
    }

    async fn has_note(&self, _key: &str, idem: &str) -> Result<bool, SinkError> {
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM ticket_events WHERE idem = ?1",
                [idem],
                |_| Ok(()),
            )
            .optional()
        })
        .map(|r| r.is_some())
    }

    async fn reopen(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        self.event(key, "reopened", note, Some(TicketStatus::Open), true)
    }

    async fn resolve(&self, key: &str, note: &Note) -> Result<(), SinkError> {
        self.event(key, "resolved", note, Some(TicketStatus::Resolved), false)
    }
}
