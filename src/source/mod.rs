//! Sources: where lines come from. Owns reading bytes and splitting them into bounded
//! lines; knows nothing of formats or rules.
//!
//! Today: files, stdin and replayed corpora through [`LineReader`]. The Docker Engine
//! source and checkpoints build on the same line contract: a line is bytes without its
//! newline, cut at a maximum length with a `truncated` flag, never dropped.

mod lines;
#[cfg(test)]
mod tests;

pub use lines::LineReader;

/// A source error: the input could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Opening a file failed.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The path as given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading failed part-way.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
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
            source,
        })
}
