//! Sources: where lines come from. Owns reading bytes, splitting them into bounded lines,
//! following containers and files, and remembering how far each source was read
//! ([`checkpoint`]); knows nothing of formats or rules.
//!
//! Batch commands read files and stdin through [`LineReader`]. Live sources (`medic run`,
//! `medic tap`) run as tasks and threads that push [`SourceMsg`]s into one bounded
//! channel: when the consumer falls behind, `send` waits, so a Docker log stream stops being
//! polled (the engine buffers) and a file tail stops reading (the data waits on disk).
//! Nothing is dropped. Every record carries the [`Cursor`] just past it; the consumer
//! stores it once the record is handled.

pub mod checkpoint;
mod config;
pub mod docker;
pub mod file;
mod glob;
mod lines;
pub mod start;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use checkpoint::{CheckpointStore, Cursor};
pub use config::{DockerConfig, DockerMode, FileConfig, ReadFrom, SourcesConfig};
pub use glob::glob_match;
pub use lines::LineReader;

use crate::event::{Origin, Stream};

/// A source error: the input could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Opening a file failed.
    #[error("cannot open {path}: {error}")]
    Open {
        /// The path as given.
        path: String,
        /// The OS error (in the message, not a separate cause, so it prints once).
        error: std::io::Error,
    },
    /// Reading failed part-way.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The path as given.
        path: String,
        /// The OS error (in the message, not a separate cause, so it prints once).
        error: std::io::Error,
    },
    /// Writing state failed.
    #[error("cannot write {path}: {error}")]
    Write {
        /// The path.
        path: String,
        /// The OS error (in the message, not a separate cause, so it prints once).
        error: std::io::Error,
    },
    /// The Docker engine could not be reached or refused a request.
    #[error("docker: {0}")]
    Docker(String),
}

/// Open a path for reading, `-` meaning stdin.
pub fn open(path: &str) -> Result<Box<dyn std::io::Read + Send>, SourceError> {
    if path == "-" {
        return Ok(Box::new(std::io::stdin()));
    }
    std::fs::File::open(path)
        .map(|f| Box::new(f) as Box<dyn std::io::Read + Send>)
        .map_err(|source| SourceError::Open {
            path: path.to_string(),
            error: source,
        })
}

/// How a record's bytes are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A whole line as written: parse it fully (a file line, a json-file record).
    Line,
    /// The application's output only; stream and time came from the transport (the Docker
    /// API), and Docker's partial lines are already joined.
    Content,
}

/// One source: identity, origin for rules and incidents, and its parse overrides.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    /// Checkpoint key: `docker:<id>`, `file:<path>`, `stdin`.
    pub key: String,
    /// Who produced the lines.
    pub origin: Origin,
    /// Container id (Docker sources).
    pub container_id: Option<String>,
    /// `medic.log-format`: a format name (`auto`, `json`, `plain`, `docker-json`) or a
    /// LogPAI header.
    pub log_format: Option<String>,
    /// `medic.multiline`: override of multiline joining.
    pub multiline: Option<bool>,
}

/// One line from a live source.
#[derive(Debug)]
pub struct Record {
    /// Where it came from.
    pub source: Arc<SourceInfo>,
    /// Output stream, when the transport says.
    pub stream: Stream,
    /// Time from the transport, nanoseconds since the Unix epoch.
    pub time_ns: Option<i64>,
    /// The bytes, without the newline.
    pub line: Vec<u8>,
    /// Cut at the maximum line length.
    pub truncated: bool,
    /// How `line` is framed.
    pub framing: Framing,
    /// The position just past this record.
    pub cursor: Option<Cursor>,
}

/// What sources send to the consumer.
#[derive(Debug)]
pub enum SourceMsg {
    /// A line.
    Record(Record),
    /// The source stopped (container exited, file source ended): flush its pending
    /// multiline event.
    Closed(Arc<SourceInfo>),
    /// The source is gone for good (container destroyed): drop its checkpoint.
    Forget(String),
}

/// The sending side every source shares.
pub type Sender = tokio::sync::mpsc::Sender<SourceMsg>;

/// A stop signal for sources that run on their own threads.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Ask every holder to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked.
    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-source counters the consumer updates: lines, bytes and lag (how far the newest
/// record handled is behind the wall clock).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct SourceLag {
    /// Source kind: `docker`, `file`, `stdin`.
    pub kind: &'static str,
    /// Lines handled.
    pub lines: u64,
    /// Bytes handled.
    pub bytes: u64,
    /// Wall clock minus the newest record's time, in milliseconds, when it had one.
    pub lag_ms: Option<i64>,
}

/// Lag per source key, shared with whoever reports it.
pub type LagTable = Arc<Mutex<BTreeMap<String, SourceLag>>>;

/// Positions of the last record sent per source key: where a follower that takes over
/// (after a reconnect, a rename, a rotation) continues.
pub type SentPositions = Arc<Mutex<HashMap<String, Cursor>>>;

/// Note the position after a record sent by `key`'s follower; no allocation once the key
/// is known.
pub fn record_sent(sent: &SentPositions, key: &str, cursor: Cursor) {
    if let Ok(mut m) = sent.lock() {
        match m.get_mut(key) {
            Some(c) => *c = cursor,
            None => {
                m.insert(key.to_string(), cursor);
            }
        }
    }
}

/// Start positions for sources: the stored checkpoints.
pub type StartCursors = Arc<HashMap<String, Cursor>>;

/// Now, in nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
