//! Tailing files on a thread of their own: plain files, and Docker's json-file logs.
//!
//! The tail follows the path, not the open file: at end of file it checks whether the path
//! now names another inode (rotation by rename and create: the old file was read to its
//! end first, so nothing is lost) or is shorter than the offset (copytruncate: start again
//! at 0). Positions are (inode, offset) cursors; on restart the tail finds the inode among
//! the path and its rotated generations (`<path>.1` to `<path>.9`) and resumes there, then
//! reads each newer generation in turn; if the inode is gone, the file is read from its
//! start.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::docker::LineAssembler;
use super::{Cursor, Framing, ReadFrom, Record, SourceInfo, SourceMsg, Stop};
use crate::event::Stream;

/// What one tail reads and where it starts.
#[derive(Debug, Clone)]
pub struct Tail {
    /// The path to follow.
    pub path: PathBuf,
    /// Identity and origin of its records.
    pub info: Arc<SourceInfo>,
    /// The stored position, if any.
    pub start: Option<Cursor>,
    /// Where to start without a stored position.
    pub read_from: ReadFrom,
    /// Longer lines are cut and flagged.
    pub max_line_bytes: usize,
    /// How often to look for new data at end of file.
    pub poll: Duration,
    /// The file is a Docker json-file log: decode each record and join Docker's partial
    /// records, so the consumer sees the same lines as from the Engine API.
    pub docker_json: bool,
    /// Where to publish the position of the last line sent (so a restarted tail of the
    /// same key continues there); optional.
    pub sent: Option<super::SentPositions>,
}

struct Open {
    file: File,
    inode: u64,
    offset: u64,
}

fn open_at(path: &Path, offset: u64) -> std::io::Result<Open> {
    let mut file = File::open(path)?;
    let inode = file.metadata()?.ino();
    file.seek(SeekFrom::Start(offset))?;
    Ok(Open {
        file,
        inode,
        offset,
    })
}

/// Rotated generations kept beside a file: `path.1` (newest) to `path.9`.
const GENERATIONS: usize = 9;

/// `path` for generation 0, else `path.N`.
fn generation(path: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Which generation the file with `inode` is now, if it is still there.
fn find_generation(path: &Path, inode: u64) -> Option<(usize, std::fs::Metadata)> {
    (0..=GENERATIONS).find_map(|n| {
        std::fs::metadata(generation(path, n))
            .ok()
            .filter(|m| m.ino() == inode)
            .map(|m| (n, m))
    })
}

/// The file written after the one with `inode`: one generation newer (`path.2` is followed
/// by `path.1`, then `path`). A reader that fell more than one rotation behind still
/// reads every file the engine kept, in order.
fn successor(path: &Path, inode: u64) -> PathBuf {
    match find_generation(path, inode) {
        Some((n, _)) if n > 0 => generation(path, n - 1),
        _ => path.to_path_buf(),
    }
}

/// The first file and offset to read, from the stored cursor.
fn first_open(t: &Tail) -> std::io::Result<Open> {
    let meta = std::fs::metadata(&t.path)?;
    match t.start {
        Some(Cursor::File { inode, offset }) => match find_generation(&t.path, inode) {
            // Shorter than the offset: truncated while we were away.
            Some((n, m)) => open_at(
                &generation(&t.path, n),
                if m.len() >= offset { offset } else { 0 },
            ),
            // The file is gone: the new one is read whole.
            None => open_at(&t.path, 0),
        },
        _ => match t.read_from {
            ReadFrom::Beginning => open_at(&t.path, 0),
            ReadFrom::End => open_at(&t.path, meta.len()),
        },
    }
}

/// Run a tail until `stop` or until the consumer goes away. Blocks the calling thread.
pub fn run(t: Tail, tx: super::Sender, stop: Stop) {
    let mut open = loop {
        if stop.stopped() {
            return;
        }
        match first_open(&t) {
            Ok(o) => break o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::thread::sleep(t.poll),
            Err(e) => {
                tracing::warn!(path = %t.path.display(), error = %e, "cannot open; retrying");
                std::thread::sleep(t.poll.max(Duration::from_secs(1)));
            }
        }
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut docker = t
        .docker_json
        .then(|| (LineAssembler::new(None, t.max_line_bytes), Vec::new()));
    let publish = |cursor: Option<Cursor>| {
        if let (Some(sent), Some(c)) = (&t.sent, cursor) {
            super::record_sent(sent, &t.info.key, c);
        }
    };
    let mut send = |line: &[u8], truncated: bool, cursor: Cursor| -> bool {
        let record = |stream, time_ns, line: Vec<u8>, truncated, framing, cursor| {
            SourceMsg::Record(Record {
                source: Arc::clone(&t.info),
                stream,
                time_ns,
                line,
                truncated,
                framing,
                cursor,
            })
        };
        if let Some((asm, out)) = docker.as_mut()
            && let Ok(r) = serde_json::from_slice::<JsonFileRecord<'_>>(line)
        {
            let stream = match r.stream.as_deref() {
                Some("stderr") => Stream::Stderr,
                _ => Stream::Stdout,
            };
            let time_ns = r.time.as_deref().and_then(crate::parse::parse_rfc3339);
            asm.push_record(stream, time_ns, r.log.as_bytes(), Some(cursor), out);
            for l in out.drain(..) {
                let c = l.cursor;
                let msg = record(
                    l.stream,
                    l.time_ns,
                    l.line,
                    l.truncated,
                    Framing::Content,
                    c,
                );
                if tx.blocking_send(msg).is_err() {
                    return false;
                }
                publish(c);
            }
            return true;
        }
        // Not a json-file record (or not a json-file tail): pass it on whole; the parser
        // counts a malformed record.
        let msg = record(
            Stream::Unknown,
            None,
            line.to_vec(),
            truncated,
            Framing::Line,
            Some(cursor),
        );
        let ok = tx.blocking_send(msg).is_ok();
        if ok {
            publish(Some(cursor));
        }
        ok
    };
    loop {
        if stop.stopped() {
            return;
        }
        let n = match open.file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(path = %t.path.display(), error = %e, "read failed; reopening");
                0
            }
        };
        if n > 0 {
            let base = open.offset;
            let mut start = 0;
            for nl in memchr::memchr_iter(b'\n', &buf[..n]) {
                let piece = &buf[start..nl];
                let cursor = Cursor::File {
                    inode: open.inode,
                    offset: base + nl as u64 + 1,
                };
                let ok = if pending.is_empty() && !truncated {
                    let cut = piece.len() > t.max_line_bytes;
                    send(&piece[..piece.len().min(t.max_line_bytes)], cut, cursor)
                } else {
                    append_bounded(&mut pending, &mut truncated, piece, t.max_line_bytes);
                    let ok = send(&pending, truncated, cursor);
                    pending.clear();
                    truncated = false;
                    ok
                };
                if !ok {
                    return;
                }
                start = nl + 1;
            }
            append_bounded(
                &mut pending,
                &mut truncated,
                &buf[start..n],
                t.max_line_bytes,
            );
            open.offset += n as u64;
            continue;
        }
        if stop.stopped() {
            return;
        }
        // End of file: rotated, truncated, or just no new data yet.
        match std::fs::metadata(&t.path) {
            Ok(m) if m.ino() != open.inode => {
                // Renamed away and recreated: the old file is read to its end. A last line
                // without a newline is still a line.
                if !pending.is_empty() || truncated {
                    let cursor = Cursor::File {
                        inode: open.inode,
                        offset: open.offset,
                    };
                    if !send(&pending, truncated, cursor) {
                        return;
                    }
                    pending.clear();
                    truncated = false;
                }
                let next = successor(&t.path, open.inode);
                match open_at(&next, 0) {
                    Ok(o) => {
                        tracing::debug!(path = %next.display(), "file rotated; reading its successor");
                        open = o;
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(path = %t.path.display(), error = %e, "new file not ready")
                    }
                }
            }
            Ok(m) if m.len() < open.offset => {
                tracing::info!(path = %t.path.display(), "file truncated; reading from the start");
                pending.clear();
                truncated = false;
                if let Ok(o) = open_at(&t.path, 0) {
                    open = o;
                    continue;
                }
            }
            _ => {}
        }
        std::thread::sleep(t.poll);
    }
}

/// One line of Docker's json-file log.
#[derive(serde::Deserialize)]
struct JsonFileRecord<'a> {
    #[serde(borrow)]
    log: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    stream: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<std::borrow::Cow<'a, str>>,
}

fn append_bounded(dst: &mut Vec<u8>, truncated: &mut bool, src: &[u8], max: usize) {
    let room = max.saturating_sub(dst.len());
    if src.len() > room {
        *truncated = true;
    }
    dst.extend_from_slice(&src[..src.len().min(room)]);
}
