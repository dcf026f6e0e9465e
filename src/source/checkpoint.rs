//! Durable read positions, one per source, in one JSON file under the state directory.
//!
//! The consumer (the pipeline or `medic tap`) owns the store and records a position only
//! after it has handled the record, so a crash can repeat at most the records since the
//! last flush and never skip one. A flush writes a temporary file, syncs it and renames it
//! over the old one, so the file on disk is always a whole, valid snapshot.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SourceError;

/// Where a source has read up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cursor {
    /// A Docker log stream: the last record's time, and how many records carrying exactly
    /// that time were handled (Docker's `since` is inclusive and only to the second).
    Docker {
        /// Nanoseconds since the Unix epoch.
        time_ns: i64,
        /// Records handled at `time_ns`.
        seen_at_time: u32,
    },
    /// A file: its inode and the offset just past the last handled line.
    File {
        /// Inode number, to tell a rotated file from its successor.
        inode: u64,
        /// Byte offset.
        offset: u64,
    },
}

impl Cursor {
    /// Whether a Docker record at `time_ns` was already handled, given this cursor, and how
    /// many records at that time this resume has skipped so far (`skipped`, updated).
    pub fn docker_already_seen(&self, time_ns: i64, skipped: &mut u32) -> bool {
        let Cursor::Docker {
            time_ns: t,
            seen_at_time,
        } = *self
        else {
            return false;
        };
        if time_ns < t {
            return true;
        }
        if time_ns == t && *skipped < seen_at_time {
            *skipped += 1;
            return true;
        }
        false
    }

    /// The Docker cursor after handling one more record at `time_ns`.
    pub fn docker_next(prev: Option<&Cursor>, time_ns: i64) -> Cursor {
        match prev {
            Some(&Cursor::Docker {
                time_ns: t,
                seen_at_time,
            }) if t == time_ns => Cursor::Docker {
                time_ns,
                seen_at_time: seen_at_time.saturating_add(1),
            },
            _ => Cursor::Docker {
                time_ns,
                seen_at_time: 1,
            },
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    version: u32,
    sources: BTreeMap<String, Cursor>,
}

const VERSION: u32 = 1;

/// The checkpoint file of one state directory.
#[derive(Debug)]
pub struct CheckpointStore {
    path: PathBuf,
    cursors: BTreeMap<String, Cursor>,
    dirty: bool,
}

impl CheckpointStore {
    /// File name inside the state directory.
    pub const FILE: &'static str = "checkpoints.json";

    /// Open (creating the directory if needed) and load. A file that cannot be parsed is
    /// moved aside to `checkpoints.json.corrupt` and reported, so the sidecar starts from its
    /// look-back instead of refusing to run; the caller logs the returned warning.
    pub fn open(dir: &Path) -> Result<(CheckpointStore, Option<String>), SourceError> {
        std::fs::create_dir_all(dir).map_err(|source| SourceError::Open {
            path: dir.display().to_string(),
            error: source,
        })?;
        let path = dir.join(Self::FILE);
        let mut warning = None;
        let cursors = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(d) if d.version == VERSION => d.sources,
                Ok(d) => {
                    warning = Some(format!(
                        "{}: checkpoint version {} is not {VERSION}; starting from the look-back",
                        path.display(),
                        d.version
                    ));
                    BTreeMap::new()
                }
                Err(e) => {
                    let aside = path.with_extension("json.corrupt");
                    let _ = std::fs::rename(&path, &aside);
                    warning = Some(format!(
                        "{}:{}:{}: invalid checkpoint file ({e}); moved to {} and starting from the look-back",
                        path.display(),
                        e.line(),
                        e.column(),
                        aside.display()
                    ));
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => {
                return Err(SourceError::Read {
                    path: path.display().to_string(),
                    error: source,
                });
            }
        };
        Ok((
            CheckpointStore {
                path,
                cursors,
                dirty: false,
            },
            warning,
        ))
    }

    /// Every stored cursor.
    pub fn cursors(&self) -> &BTreeMap<String, Cursor> {
        &self.cursors
    }

    /// The cursor of one source.
    pub fn get(&self, key: &str) -> Option<&Cursor> {
        self.cursors.get(key)
    }

    /// Record a handled position.
    pub fn set(&mut self, key: &str, cursor: Cursor) {
        match self.cursors.get_mut(key) {
            Some(c) if *c == cursor => return,
            Some(c) => *c = cursor,
            None => {
                self.cursors.insert(key.to_string(), cursor);
            }
        }
        self.dirty = true;
    }

    /// Forget a source that is gone for good (a destroyed container).
    pub fn remove(&mut self, key: &str) {
        self.dirty |= self.cursors.remove(key).is_some();
    }

    /// Write the file if anything changed since the last flush.
    pub fn flush(&mut self) -> Result<(), SourceError> {
        if !self.dirty {
            return Ok(());
        }
        let err = |source| SourceError::Write {
            path: self.path.display().to_string(),
            error: source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(&OnDisk {
            version: VERSION,
            sources: self.cursors.clone(),
        })
        .map_err(|e| err(std::io::Error::other(e)))?;
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        // The rename is durable only once the directory entry is.
        if let Some(dir) = self.path.parent()
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forget() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut s, w) = CheckpointStore::open(dir.path()).expect("open");
        assert!(w.is_none());
        s.set(
            "docker:a",
            Cursor::Docker {
                time_ns: 5,
                seen_at_time: 2,
            },
        );
        s.set(
            "file:/x",
            Cursor::File {
                inode: 7,
                offset: 100,
            },
        );
        s.flush().expect("flush");
        let (mut again, _) = CheckpointStore::open(dir.path()).expect("reopen");
        assert_eq!(again.cursors(), s.cursors());
        again.remove("docker:a");
        again.flush().expect("flush");
        let (third, _) = CheckpointStore::open(dir.path()).expect("reopen");
        assert_eq!(third.cursors().len(), 1);
        assert!(!dir.path().join("checkpoints.json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_with_a_located_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(CheckpointStore::FILE),
            "{\"version\": 1,\n \"sources\": {\"x\": {\"kind\": \"nope\"}}}",
        )
        .expect("write");
        let (s, w) = CheckpointStore::open(dir.path()).expect("open");
        let w = w.expect("a warning");
        assert!(w.contains("checkpoints.json:2:"), "{w}");
        assert!(s.cursors().is_empty());
        assert!(dir.path().join("checkpoints.json.corrupt").exists());
    }

    #[test]
    fn docker_resume_rule() {
        let c = Cursor::Docker {
            time_ns: 10,
            seen_at_time: 2,
        };
        let mut skipped = 0;
        assert!(c.docker_already_seen(9, &mut skipped));
        assert!(c.docker_already_seen(10, &mut skipped));
        assert!(c.docker_already_seen(10, &mut skipped));
        assert!(!c.docker_already_seen(10, &mut skipped));
        assert!(!c.docker_already_seen(11, &mut skipped));
        assert_eq!(
            Cursor::docker_next(Some(&c), 10),
            Cursor::Docker {
                time_ns: 10,
                seen_at_time: 3
            }
        );
        assert_eq!(
            Cursor::docker_next(Some(&c), 12),
            Cursor::Docker {
                time_ns: 12,
                seen_at_time: 1
            }
        );
    }
}
