//! Bounded line splitting over any reader.

use std::io::{self, Read};

/// The read buffer. A line that fits in it is handed out in place, without a copy.
const BUF_BYTES: usize = 256 * 1024;

/// Splits a byte stream into lines without ever holding more than `max_line` bytes of one
/// line: a longer line is cut, flagged `truncated`, and the rest of it skipped up to its
/// newline. A final line without a newline is still returned. `\r\n` endings lose the `\r`.
pub struct LineReader<R> {
    inner: R,
    buf: Box<[u8]>,
    /// Unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    eof: bool,
    /// Holds a line longer than the buffer while it is assembled.
    long: Vec<u8>,
    max_line: usize,
}

impl<R: Read> LineReader<R> {
    /// A reader with a 256 KiB buffer.
    pub fn new(inner: R, max_line: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: vec![0; BUF_BYTES].into_boxed_slice(),
            pos: 0,
            end: 0,
            eof: false,
            long: Vec::new(),
            max_line: max_line.max(1),
        }
    }

    /// The next line and whether it was truncated, or `None` at end of input.
    pub fn next_line(&mut self) -> io::Result<Option<(&[u8], bool)>> {
        loop {
            if let Some(nl) = memchr::memchr(b'\n', &self.buf[self.pos..self.end]) {
                let start = self.pos;
                self.pos += nl + 1;
                return Ok(Some(self.cut(start, start + nl)));
            }
            if self.eof {
                if self.pos == self.end {
                    return Ok(None);
                }
                let (start, end) = (self.pos, self.end);
                self.pos = end;
                return Ok(Some(self.cut(start, end)));
            }
            if self.end - self.pos == self.buf.len() {
                return self.long_line().map(Some);
            }
            self.fill()?;
        }
    }

    /// `buf[start..end]` as a line: cut to `max_line`, without a final `\r`.
    fn cut(&self, start: usize, end: usize) -> (&[u8], bool) {
        let truncated = end - start > self.max_line;
        let line = &self.buf[start..end.min(start + self.max_line)];
        (line.strip_suffix(b"\r").unwrap_or(line), truncated)
    }

    /// A line that fills the whole buffer: copy up to `max_line` bytes of it aside and
    /// skip the rest up to its newline.
    fn long_line(&mut self) -> io::Result<(&[u8], bool)> {
        self.long.clear();
        let mut truncated = false;
        loop {
            if self.pos == self.end {
                if self.eof {
                    break;
                }
                self.fill()?;
                continue;
            }
            let avail = &self.buf[self.pos..self.end];
            let (chunk, used, done) = match memchr::memchr(b'\n', avail) {
                Some(nl) => (&avail[..nl], nl + 1, true),
                None => (avail, avail.len(), false),
            };
            let room = self.max_line - self.long.len();
            if chunk.len() > room {
                truncated = true;
            }
            self.long.extend_from_slice(&chunk[..chunk.len().min(room)]);
            self.pos += used;
            if done {
                break;
            }
        }
        if self.long.last() == Some(&b'\r') {
            self.long.pop();
        }
        Ok((&self.long, truncated))
    }

    /// Move the unread bytes to the front of the buffer and read more after them.
    fn fill(&mut self) -> io::Result<()> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
