//! One container's log stream through the Engine API: timestamps split off, records
//! already handled before a restart dropped, Docker's 16 KiB partial records joined.
//!
//! The logs endpoint returns one frame per json-file record, each prefixed by its RFC 3339
//! timestamp; a record without a trailing newline is a partial line that the next record of
//! the same stream continues. Joining happens on bytes, so a multi-byte UTF-8 character cut
//! at the 16 KiB boundary is whole again before anything decodes it.
//!
//! Positions advance per record: a joined line carries the position of its last piece. The
//! resume rule (`since` the cursor's second, then skip records up to the cursor) works on
//! the same per-record count.

use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::{FutureExt, StreamExt};

use super::Sent;
use crate::event::Stream;
use crate::source::{Cursor, Framing, Record, Sender, SourceInfo, SourceMsg};

/// How long a follower waits, once its stream has nothing ready, before it reads again.
const LINGER: Duration = Duration::from_millis(5);

/// The size of the pieces Docker cuts long lines into (moby's log copier buffer).
pub const DOCKER_SPLIT: usize = 16 * 1024;

/// A complete line out of the assembler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerLine {
    /// stdout or stderr (TTY output is stdout).
    pub stream: Stream,
    /// The time of its first record.
    pub time_ns: Option<i64>,
    /// The content without its newline.
    pub line: Vec<u8>,
    /// Cut at the maximum line length.
    pub truncated: bool,
    /// The position after its last record.
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Default)]
struct Partial {
    buf: Vec<u8>,
    truncated: bool,
    time_ns: Option<i64>,
}

/// Frames in, whole lines out.
#[derive(Debug)]
pub struct LineAssembler {
    resume: Option<Cursor>,
    skipped_at_resume: u32,
    cursor: Option<Cursor>,
    partial: [Partial; 2],
    max_line_bytes: usize,
    /// Records dropped because they were handled before the restart.
    pub replayed: u64,
}

/// Split `2024-05-01T10:00:00.123456789Z message` into the time and the message. A frame
/// without a parsable timestamp is all message.
pub fn split_timestamp(frame: &[u8]) -> (Option<i64>, &[u8]) {
    let Some(sp) = memchr::memchr(b' ', &frame[..frame.len().min(40)]) else {
        return (None, frame);
    };
    match std::str::from_utf8(&frame[..sp])
        .ok()
        .and_then(crate::parse::parse_rfc3339)
    {
        Some(t) => (Some(t), &frame[sp + 1..]),
        None => (None, frame),
    }
}

impl LineAssembler {
    /// An assembler that drops records up to `resume`.
    pub fn new(resume: Option<Cursor>, max_line_bytes: usize) -> LineAssembler {
        LineAssembler {
            resume,
            skipped_at_resume: 0,
            cursor: resume,
            partial: Default::default(),
            max_line_bytes,
            replayed: 0,
        }
    }

    /// Take one API frame (`<timestamp> <content>`) of `stream`; complete lines are
    /// appended to `out`.
    pub fn push(&mut self, stream: Stream, frame: &[u8], out: &mut Vec<DockerLine>) {
        let (time_ns, content) = split_timestamp(frame);
        if let Some(t) = time_ns {
            if let Some(r) = &self.resume
                && r.docker_already_seen(t, &mut self.skipped_at_resume)
            {
                self.replayed += 1;
                return;
            }
            self.cursor = Some(Cursor::docker_next(self.cursor.as_ref(), t));
        }
        let cursor = self.cursor;
        self.push_record(stream, time_ns, content, cursor, out);
    }

    /// Take one record whose time is already split off; `cursor` is the position after
    /// it, carried by the line it completes.
    pub fn push_record(
        &mut self,
        stream: Stream,
        time_ns: Option<i64>,
        content: &[u8],
        cursor: Option<Cursor>,
        out: &mut Vec<DockerLine>,
    ) {
        self.cursor = cursor;
        // Docker cuts a line into records of exactly DOCKER_SPLIT bytes; only those lack the
        // newline. A shorter record without one still ends its line: the `local` driver of
        // some engines drops the newline of the last piece of a split line, and output that
        // ends without a newline is a line too.
        let (content, complete) = match content.strip_suffix(b"\n") {
            Some(c) => (c.strip_suffix(b"\r").unwrap_or(c), true),
            None => (content, content.len() < DOCKER_SPLIT),
        };
        let p = &mut self.partial[usize::from(stream == Stream::Stderr)];
        if p.buf.is_empty() && !p.truncated && complete {
            let cut = content.len() > self.max_line_bytes;
            out.push(DockerLine {
                stream,
                time_ns,
                line: content[..content.len().min(self.max_line_bytes)].to_vec(),
                truncated: cut,
                cursor,
            });
            return;
        }
        if p.buf.is_empty() && !p.truncated {
            p.time_ns = time_ns;
        }
        let room = self.max_line_bytes.saturating_sub(p.buf.len());
        if content.len() > room {
            p.truncated = true;
        }
        p.buf.extend_from_slice(&content[..content.len().min(room)]);
        if complete {
            out.push(DockerLine {
                stream,
                time_ns: p.time_ns,
                line: std::mem::take(&mut p.buf),
                truncated: std::mem::take(&mut p.truncated),
                cursor,
            });
        }
    }

    /// The stream ended cleanly (the container stopped): a last partial line is a line.
    pub fn finish(&mut self, out: &mut Vec<DockerLine>) {
        for (i, p) in self.partial.iter_mut().enumerate() {
            if !p.buf.is_empty() || p.truncated {
                out.push(DockerLine {
                    stream: if i == 1 {
                        Stream::Stderr
                    } else {
                        Stream::Stdout
                    },
                    time_ns: p.time_ns,
                    line: std::mem::take(&mut p.buf),
                    truncated: std::mem::take(&mut p.truncated),
                    cursor: self.cursor,
                });
            }
        }
    }
}

/// The `since` of a logs request, in whole seconds: the second of the resume position (the
/// records of that second already handled are dropped by the assembler), else `lookback`
/// before now.
pub fn since_secs(resume: Option<Cursor>, lookback: Duration) -> i64 {
    let since_ns = match resume {
        Some(Cursor::Docker { time_ns, .. }) => time_ns,
        _ => crate::source::now_ns()
            .saturating_sub(i64::try_from(lookback.as_nanos()).unwrap_or(i64::MAX)),
    };
    since_ns.div_euclid(1_000_000_000).max(0)
}

/// Follow one container's logs until the stream ends or the task is aborted.
pub(super) struct Follow {
    pub docker: Docker,
    pub info: Arc<SourceInfo>,
    pub resume: Option<Cursor>,
    pub lookback: Duration,
    pub tty: bool,
    pub max_line_bytes: usize,
    pub tx: Sender,
    pub sent: Sent,
}

impl Follow {
    pub async fn run(self) {
        let since = i32::try_from(since_secs(self.resume, self.lookback)).unwrap_or(i32::MAX);
        let id = self.info.container_id.clone().unwrap_or_default();
        let mut stream = self.docker.logs(
            &id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                since,
                until: 0,
                timestamps: true,
                tail: "all".into(),
            }),
        );
        let mut asm = LineAssembler::new(self.resume, self.max_line_bytes);
        let mut out = Vec::new();
        let mut clean = true;
        loop {
            // The engine writes one frame per line, so waking per readable frame costs more
            // than the line. When nothing more is ready, linger so the next wake-up finds a
            // batch in the socket buffer. (Data that is ready is never delayed.)
            let item = match stream.next().now_or_never() {
                Some(item) => item,
                None => {
                    // The HTTP connection runs as a task of its own and hands over one
                    // chunk at a time: let it run first, so a backlog is read at full speed
                    // and only a stream that is really idle lingers.
                    tokio::task::yield_now().await;
                    match stream.next().now_or_never() {
                        Some(item) => item,
                        None => {
                            tokio::time::sleep(LINGER).await;
                            stream.next().await
                        }
                    }
                }
            };
            let Some(item) = item else { break };
            let (stream, frame) = match item {
                Ok(LogOutput::StdOut { message }) => (Stream::Stdout, message),
                Ok(LogOutput::StdErr { message }) => (Stream::Stderr, message),
                // A TTY has one stream; Docker reports it as stdout.
                Ok(LogOutput::Console { message }) => (Stream::Stdout, message),
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(e) => {
                    tracing::warn!(container = %self.info.origin.name, error = %e, "log stream failed");
                    clean = false;
                    break;
                }
            };
            asm.push(stream, &frame, &mut out);
            if !self.send(&mut out).await {
                return;
            }
        }
        if clean {
            asm.finish(&mut out);
            if !self.send(&mut out).await {
                return;
            }
        }
        tracing::info!(container = %self.info.origin.name, tty = self.tty, replayed = asm.replayed, "log stream ended");
        let _ = self
            .tx
            .send(SourceMsg::Closed(Arc::clone(&self.info)))
            .await;
    }

    async fn send(&self, out: &mut Vec<DockerLine>) -> bool {
        for l in out.drain(..) {
            let cursor = l.cursor;
            if self.tx.send(l.into_msg(&self.info)).await.is_err() {
                return false;
            }
            // Per record: this task can be aborted at any await, and its successor must
            // find the position of every record that went out.
            if let Some(c) = cursor {
                crate::source::record_sent(&self.sent, &self.info.key, c);
            }
        }
        true
    }
}

impl DockerLine {
    /// The record of this line from `info`.
    pub(super) fn into_msg(self, info: &Arc<SourceInfo>) -> SourceMsg {
        SourceMsg::Record(Record {
            source: Arc::clone(info),
            stream: self.stream,
            time_ns: self.time_ns,
            line: self.line,
            truncated: self.truncated,
            framing: Framing::Content,
            cursor: self.cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: &str, body: &[u8]) -> Vec<u8> {
        let mut f = format!("{ts} ").into_bytes();
        f.extend_from_slice(body);
        f
    }

    fn texts(out: &[DockerLine]) -> Vec<String> {
        out.iter()
            .map(|l| String::from_utf8(l.line.clone()).expect("utf-8"))
            .collect()
    }

    #[test]
    fn joins_split_records_on_bytes_per_stream() {
        let mut asm = LineAssembler::new(None, 1 << 20);
        let mut out = Vec::new();
        // "é" (c3 a9) cut between two 16 KiB records, stderr interleaved.
        let mut first = vec![b'a'; DOCKER_SPLIT - 1];
        first.push(0xc3);
        asm.push(
            Stream::Stdout,
            &frame("2024-01-01T00:00:00.000000001Z", &first),
            &mut out,
        );
        asm.push(
            Stream::Stderr,
            &frame("2024-01-01T00:00:00.000000002Z", b"err line\n"),
            &mut out,
        );
        asm.push(
            Stream::Stdout,
            &frame("2024-01-01T00:00:00.000000003Z", b"\xa9 end\n"),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(texts(&out)[0], "err line");
        assert_eq!(out[0].stream, Stream::Stderr);
        let joined = &texts(&out)[1];
        assert!(
            joined.ends_with("aé end"),
            "{}",
            &joined[joined.len() - 10..]
        );
        assert_eq!(out[1].time_ns, Some(1_704_067_200_000_000_001));
        assert_eq!(
            out[1].cursor,
            Some(Cursor::Docker {
                time_ns: 1_704_067_200_000_000_003,
                seen_at_time: 1
            })
        );
    }

    #[test]
    fn short_record_without_newline_ends_its_line() {
        let mut asm = LineAssembler::new(None, 1 << 20);
        let mut out = Vec::new();
        let t = "2024-01-01T00:00:00Z";
        asm.push(
            Stream::Stdout,
            &frame(t, &vec![b'x'; DOCKER_SPLIT]),
            &mut out,
        );
        asm.push(Stream::Stdout, &frame(t, b"tail"), &mut out);
        asm.push(Stream::Stdout, &frame(t, b"next\r\n"), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].line.len(), DOCKER_SPLIT + 4);
        assert_eq!(texts(&out)[1], "next");
        // Three records at one time: the cursor counts all of them.
        assert_eq!(
            out[1].cursor,
            Some(Cursor::Docker {
                time_ns: 1_704_067_200_000_000_000,
                seen_at_time: 3
            })
        );
    }

    #[test]
    fn resume_drops_records_up_to_the_cursor() {
        let resume = Cursor::Docker {
            time_ns: 2_000,
            seen_at_time: 2,
        };
        let mut asm = LineAssembler::new(Some(resume), 1 << 20);
        let mut out = Vec::new();
        let ts = |ns: i64| format!("1970-01-01T00:00:00.{ns:09}Z");
        for (ns, body) in [
            (1_000, "old"),
            (2_000, "same-time-1"),
            (2_000, "same-time-2"),
            (2_000, "same-time-3"),
            (3_000, "new"),
        ] {
            asm.push(
                Stream::Stdout,
                &frame(&ts(ns), format!("{body}\n").as_bytes()),
                &mut out,
            );
        }
        assert_eq!(texts(&out), ["same-time-3", "new"]);
        assert_eq!(asm.replayed, 3);
    }

    #[test]
    fn long_lines_are_cut_and_flagged() {
        let mut asm = LineAssembler::new(None, 10);
        let mut out = Vec::new();
        let t = "2024-01-01T00:00:00Z";
        asm.push(
            Stream::Stdout,
            &frame(t, &vec![b'x'; DOCKER_SPLIT]),
            &mut out,
        );
        asm.push(Stream::Stdout, &frame(t, b"yyy\n"), &mut out);
        asm.push(Stream::Stdout, &frame(t, b"0123456789abc\n"), &mut out);
        assert_eq!(texts(&out), ["xxxxxxxxxx", "0123456789"]);
        assert!(out.iter().all(|l| l.truncated));
    }

    #[test]
    fn frames_without_timestamps_are_all_message() {
        assert_eq!(
            split_timestamp(b"no time here"),
            (None, &b"no time here"[..])
        );
        let (t, m) = split_timestamp(b"2024-01-01T00:00:00.5Z hello");
        assert_eq!(t, Some(1_704_067_200_500_000_000));
        assert_eq!(m, b"hello");
    }
}
