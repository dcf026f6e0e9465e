//! The only module that knows every stage: it wires source → parse → detect → fingerprint
//! for one stream of lines.
//!
//! [`Core`] is synchronous and allocation-free per line in the steady state. The commands
//! (`replay`, `templates`, `bench`) and later the windowing dataflow drive it.

use std::io::Read;

use crate::detect::{Detector, RuleSet};
use crate::event::{Detection, Event, Origin};
use crate::fingerprint::{Fingerprinted, Fingerprinter, MinerConfig};
use crate::parse::{ParseConfig, ParseError, Parser};
use crate::source::LineReader;

/// Which stages to run; lets the benchmark time each stage by difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Depth {
    /// Split lines only.
    Read,
    /// And parse.
    Parse,
    /// And detect.
    Detect,
    /// And fingerprint.
    Fingerprint,
}

/// What the core saw of one event.
#[derive(Debug)]
pub struct Seen<'a> {
    /// The event.
    pub event: &'a Event,
    /// Rule hits (empty below [`Depth::Detect`]).
    pub detection: &'a Detection,
    /// Its fingerprint (only at [`Depth::Fingerprint`]).
    pub fingerprint: Option<Fingerprinted>,
    /// The fingerprinter, to look templates up.
    pub fingerprinter: &'a Fingerprinter,
}

/// parse → detect → fingerprint for one stream.
#[derive(Debug)]
pub struct Core<'r> {
    parser: Parser,
    detector: Detector<'r>,
    fingerprinter: Fingerprinter,
    detection: Detection,
    depth: Depth,
    /// Fingerprint only events that hit a rule (the production path), or every event
    /// (`medic templates`, benchmarks).
    fingerprint_all: bool,
}

impl<'r> Core<'r> {
    /// Build the stages.
    pub fn new(
        parse: &ParseConfig,
        miner: MinerConfig,
        rules: &'r RuleSet,
    ) -> Result<Core<'r>, ParseError> {
        Ok(Core {
            parser: Parser::new(parse)?,
            detector: Detector::new(rules),
            fingerprinter: Fingerprinter::new(miner),
            detection: Detection::default(),
            depth: Depth::Fingerprint,
            fingerprint_all: true,
        })
    }

    /// Stop after `depth`.
    pub fn with_depth(mut self, depth: Depth) -> Self {
        self.depth = depth;
        self
    }

    /// Fingerprint every event (default) or only rule hits.
    pub fn fingerprint_all(mut self, all: bool) -> Self {
        self.fingerprint_all = all;
        self
    }

    /// The parser (for counters).
    pub fn parser(&self) -> &Parser {
        &self.parser
    }

    /// The detector (for counters and rules).
    pub fn detector(&self) -> &Detector<'r> {
        &self.detector
    }

    /// The fingerprinter (for templates and counters).
    pub fn fingerprinter(&self) -> &Fingerprinter {
        &self.fingerprinter
    }

    /// Read `input` to its end, calling `f` for every event. Returns the lines read.
    pub fn run<R: Read>(
        &mut self,
        input: R,
        origin: &Origin,
        mut f: impl FnMut(Seen<'_>),
    ) -> std::io::Result<u64> {
        let Core {
            parser,
            detector,
            fingerprinter,
            detection,
            depth,
            fingerprint_all,
        } = self;
        let mut reader = LineReader::new(input, parser.max_line_bytes());
        let mut emit = |ev: &Event| {
            Self::downstream(
                ev,
                origin,
                *depth,
                *fingerprint_all,
                detector,
                fingerprinter,
                detection,
                &mut f,
            )
        };
        let mut lines = 0u64;
        // Files replay at full speed: the multiline wait bound never fires mid-file, and
        // the last event is flushed at end of input.
        let now_ms = 0;
        while let Some((line, truncated)) = reader.next_line()? {
            lines += 1;
            if *depth == Depth::Read {
                continue;
            }
            if let Some(ev) = parser.push(line, truncated, now_ms) {
                emit(ev);
            }
        }
        if let Some(ev) = parser.finish() {
            emit(ev);
        }
        Ok(lines)
    }

    #[allow(clippy::too_many_arguments)]
    fn downstream(
        ev: &Event,
        origin: &Origin,
        depth: Depth,
        fingerprint_all: bool,
        detector: &mut Detector<'r>,
        fingerprinter: &mut Fingerprinter,
        detection: &mut Detection,
        f: &mut impl FnMut(Seen<'_>),
    ) {
        detection.rules.clear();
        detection.severity = None;
        if depth >= Depth::Detect {
            detector.detect(ev, origin, detection);
        }
        let fingerprint = (depth >= Depth::Fingerprint && (fingerprint_all || detection.is_hit()))
            .then(|| fingerprinter.fingerprint(ev));
        f(Seen {
            event: ev,
            detection,
            fingerprint,
            fingerprinter,
        });
    }
}
