//! The logs endpoint read on a plain blocking unix socket, one thread per container.
//!
//! Through hyper, every frame the engine writes wakes the runtime (the connection task is
//! readiness-driven), which cost about 11% of a core at 10k lines/s. A thread that reads
//! 64 KiB at a time and sleeps a few milliseconds whenever a read comes back short lets the
//! kernel batch the frames: one wake-up per batch. The protocol is small: an HTTP/1.1 GET,
//! a chunked body, and Docker's stream framing (8-byte headers, or raw for a TTY).
//! Connection, discovery and events stay on bollard; other transports (TCP, TLS) read logs
//! through bollard too.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Sent;
use super::logs::{DockerLine, LineAssembler};
use crate::event::Stream;
use crate::source::{Cursor, Sender, SourceInfo, SourceMsg, Stop};

/// How long the reader sleeps after a short read, so that the next read takes a batch.
const LINGER: Duration = Duration::from_millis(5);

/// Records older than this (by their engine timestamp) mean the reader is behind.
const BEHIND_NS: i64 = 250_000_000;

/// The socket path of a `unix://` host, or of `DOCKER_HOST`, or the default socket.
pub fn unix_socket(host: Option<&str>) -> Option<PathBuf> {
    let host = match host {
        Some(h) => h.to_string(),
        None => {
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
        }
    };
    host.strip_prefix("unix://").map(PathBuf::from)
}

/// One follower thread's job.
pub(super) struct RawFollow {
    pub socket: PathBuf,
    pub api_version: String,
    pub info: Arc<SourceInfo>,
    pub resume: Option<Cursor>,
    pub since: i64,
    pub max_line_bytes: usize,
    pub tx: Sender,
    pub sent: Sent,
    pub stop: Stop,
}

/// Chunked transfer decoding, incrementally.
#[derive(Debug, Default)]
struct Chunked {
    /// Bytes left in the current chunk; `None` while reading a size line.
    left: Option<usize>,
    line: Vec<u8>,
    /// After a chunk's data, its CRLF is skipped.
    skip_crlf: usize,
    done: bool,
}

impl Chunked {
    /// Append the payload bytes in `input` to `out`. Returns an error on a bad size line.
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        while !input.is_empty() && !self.done {
            if self.skip_crlf > 0 {
                let n = self.skip_crlf.min(input.len());
                self.skip_crlf -= n;
                input = &input[n..];
                continue;
            }
            match self.left {
                Some(0) => {
                    self.left = None;
                    self.skip_crlf = 2;
                }
                Some(n) => {
                    let take = n.min(input.len());
                    out.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.left = Some(n - take);
                }
                None => {
                    let Some(nl) = memchr::memchr(b'\n', input) else {
                        self.line.extend_from_slice(input);
                        if self.line.len() > 1024 {
                            return Err("chunk size line too long".into());
                        }
                        return Ok(());
                    };
                    self.line.extend_from_slice(&input[..nl]);
                    input = &input[nl + 1..];
                    let text = String::from_utf8_lossy(&self.line);
                    let size = text
                        .trim()
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    self.line.clear();
                    let n = usize::from_str_radix(&size, 16)
                        .map_err(|_| format!("bad chunk size {size:?}"))?;
                    if n == 0 {
                        self.done = true;
                    } else {
                        self.left = Some(n);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Docker's stream framing: multiplexed 8-byte headers, or raw lines for a TTY.
#[derive(Debug)]
struct Frames {
    /// Raw or multiplexed; unknown until the first byte when the engine does not say (API
    /// versions before 1.42 send no content type): a multiplexed frame starts with 0, 1 or 2.
    raw: Option<bool>,
    buf: Vec<u8>,
}

impl Frames {
    /// Split whole frames off the front of the buffer.
    fn drain(&mut self, mut f: impl FnMut(Stream, &[u8])) {
        let raw = match (self.raw, self.buf.first()) {
            (Some(r), _) => r,
            (None, Some(&b)) => *self.raw.insert(b > 2),
            (None, None) => return,
        };
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            if raw {
                let Some(nl) = memchr::memchr(b'\n', rest) else {
                    break;
                };
                f(Stream::Stdout, &rest[..=nl]);
                at += nl + 1;
            } else {
                if rest.len() < 8 {
                    break;
                }
                let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
                if rest.len() < 8 + len {
                    break;
                }
                let stream = match rest[0] {
                    2 => Stream::Stderr,
                    _ => Stream::Stdout,
                };
                if rest[0] != 0 {
                    f(stream, &rest[8..8 + len]);
                }
                at += 8 + len;
            }
        }
        self.buf.drain(..at);
    }
}

impl RawFollow {
    /// Follow until the stream ends, the engine goes away, or `stop`.
    pub fn run(self) {
        let name = self.info.origin.name.clone();
        match self.follow() {
            Ok(true) => {
                tracing::info!(container = %name, "log stream ended");
                let _ = self
                    .tx
                    .blocking_send(SourceMsg::Closed(Arc::clone(&self.info)));
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(container = %name, error = %e, "log stream failed");
                let _ = self
                    .tx
                    .blocking_send(SourceMsg::Closed(Arc::clone(&self.info)));
            }
        }
    }

    /// Ok(true) when the stream ended cleanly, Ok(false) when stopped or the consumer left.
    fn follow(&self) -> Result<bool, String> {
        let id = self.info.container_id.clone().unwrap_or_default();
        let mut sock = UnixStream::connect(&self.socket)
            .map_err(|e| format!("cannot connect to {}: {e}", self.socket.display()))?;
        // Reads wake up at least this often to notice a stop.
        sock.set_read_timeout(Some(Duration::from_millis(250)))
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET /v{}/containers/{id}/logs?follow=1&stdout=1&stderr=1&timestamps=1&since={}&tail=all HTTP/1.1\r\nHost: docker\r\nUser-Agent: medic\r\n\r\n",
            self.api_version,
            self.since.max(0)
        );
        sock.write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut head = Vec::new();
        // The response head.
        let body_start = loop {
            let n = match sock.read(&mut buf) {
                Ok(0) => return Err("the engine closed the connection".into()),
                Ok(n) => n,
                Err(e) if is_timeout(&e) => {
                    if self.stop.stopped() {
                        return Ok(false);
                    }
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            };
            head.extend_from_slice(&buf[..n]);
            if let Some(end) = memchr::memmem::find(&head, b"\r\n\r\n") {
                break head.split_off(end + 4);
            }
            if head.len() > 64 * 1024 {
                return Err("response head too long".into());
            }
        };
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            let mut rest = body_start;
            let _ = sock
                .read(&mut buf)
                .map(|n| rest.extend_from_slice(&buf[..n]));
            return Err(format!(
                "logs request failed with {status}: {}",
                String::from_utf8_lossy(&rest).trim()
            ));
        }
        let chunked = head.contains("transfer-encoding: chunked");
        let raw = if head.contains("application/vnd.docker.raw-stream") {
            Some(true)
        } else if head.contains("application/vnd.docker.multiplexed-stream") {
            Some(false)
        } else {
            None
        };
        let mut chunks = Chunked::default();
        let mut frames = Frames {
            raw,
            buf: Vec::new(),
        };
        let mut asm = LineAssembler::new(self.resume, self.max_line_bytes);
        let mut out: Vec<DockerLine> = Vec::new();
        let mut pending = body_start;
        // The newest record time seen; 0 (long ago) until the first record.
        let mut newest = 0i64;
        loop {
            if chunked {
                chunks.feed(&pending, &mut frames.buf)?;
            } else {
                frames.buf.extend_from_slice(&pending);
            }
            pending.clear();
            frames.drain(|stream, frame| asm.push(stream, frame, &mut out));
            if let Some(t) = out.iter().filter_map(|l| l.time_ns).max() {
                newest = newest.max(t);
            }
            if !self.send(&mut out) {
                return Ok(false);
            }
            if chunks.done || self.stop.stopped() {
                break;
            }
            let n = match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if is_timeout(&e) => continue,
                Err(e) => return Err(e.to_string()),
            };
            pending.extend_from_slice(&buf[..n]);
            // Caught up (a short read of recent records): wait for a batch. Behind (the
            // records are old: a backlog after a restart or a burst): read on at once, since
            // the engine's socket buffer holds only a couple of hundred frames and lingering
            // would cap the rate at that many per linger.
            let behind = crate::source::now_ns().saturating_sub(newest) > BEHIND_NS;
            if n < buf.len() && !behind {
                std::thread::sleep(LINGER);
            }
        }
        if self.stop.stopped() {
            return Ok(false);
        }
        // A TTY's last output may lack a newline; it is still a line.
        if frames.raw == Some(true) && !frames.buf.is_empty() {
            let last = std::mem::take(&mut frames.buf);
            asm.push(Stream::Stdout, &last, &mut out);
        }
        asm.finish(&mut out);
        if !self.send(&mut out) {
            return Ok(false);
        }
        Ok(true)
    }

    fn send(&self, out: &mut Vec<DockerLine>) -> bool {
        let mut last = None;
        for l in out.drain(..) {
            last = l.cursor.or(last);
            if self.tx.blocking_send(l.into_msg(&self.info)).is_err() {
                return false;
            }
        }
        // Once per batch: this thread stops only between batches.
        if let Some(c) = last {
            crate::source::record_sent(&self.sent, &self.info.key, c);
        }
        true
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_decoding_across_reads() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
        for split in 0..body.len() {
            let mut c = Chunked::default();
            let mut out = Vec::new();
            c.feed(&body[..split], &mut out).expect("valid");
            c.feed(&body[split..], &mut out).expect("valid");
            assert_eq!(out, b"hello world", "split at {split}");
            assert!(c.done);
        }
        let mut c = Chunked::default();
        assert!(c.feed(b"zz\r\n", &mut Vec::new()).is_err());
    }

    #[test]
    fn multiplexed_and_raw_frames() {
        let mut f = Frames {
            raw: None,
            buf: Vec::new(),
        };
        f.buf.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 3]);
        f.buf.extend_from_slice(b"out");
        f.buf.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 3]);
        f.buf.extend_from_slice(b"er"); // incomplete
        let mut got = Vec::new();
        f.drain(|s, b| got.push((s, b.to_vec())));
        assert_eq!(got, [(Stream::Stdout, b"out".to_vec())]);
        f.buf.extend_from_slice(b"r");
        f.drain(|s, b| got.push((s, b.to_vec())));
        assert_eq!(got[1], (Stream::Stderr, b"err".to_vec()));
        let mut r = Frames {
            raw: None,
            buf: b"a\r\nb\npartial".to_vec(),
        };
        let mut lines = Vec::new();
        r.drain(|_, b| lines.push(b.to_vec()));
        assert_eq!(lines, [b"a\r\n".to_vec(), b"b\n".to_vec()]);
        assert_eq!(r.buf, b"partial");
    }

    #[test]
    fn socket_paths() {
        assert_eq!(
            unix_socket(Some("unix:///run/x.sock")),
            Some(PathBuf::from("/run/x.sock"))
        );
        assert_eq!(unix_socket(Some("tcp://127.0.0.1:2375")), None);
    }
}
