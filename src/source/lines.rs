//! Bounded line splitting over any reader.

use std::io::{self, BufRead, BufReader, Read};

/// Splits a byte stream into lines without ever holding more than `max_line` bytes of one
/// line: a longer line is cut, flagged `truncated`, and the rest of it skipped up to its
/// newline. A final line without a newline is still returned. `\r\n` endings lose the `\r`.
pub struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    max_line: usize,
}

impl<R: Read> LineReader<R> {
    /// A reader with a 256 KiB buffer.
    pub fn new(inner: R, max_line: usize) -> LineReader<R> {
        LineReader {
            inner: BufReader::with_capacity(256 * 1024, inner),
            line: Vec::with_capacity(1024),
            max_line: max_line.max(1),
        }
    }

    /// The next line and whether it was truncated, or `None` at end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(&[u8], bool)>> {
        self.line.clear();
        let mut truncated = false;
        let mut saw_any = false;
        loop {
            let buf = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (chunk, used, done) = match memchr::memchr(b'\n', buf) {
                Some(nl) => (&buf[..nl], nl + 1, true),
                None => (buf, buf.len(), false),
            };
            let room = self.max_line - self.line.len();
            if chunk.len() > room {
                truncated = true;
            }
            self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.inner.consume(used);
            if done {
                break;
            }
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(Some((&self.line, truncated)))
    }
}
