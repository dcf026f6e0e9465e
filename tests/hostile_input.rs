//! Hostile input through every core stage: random bytes, broken JSON, invalid UTF-8,
//! control bytes, giant tokens and trace fragments. Nothing may panic, and every event
//! must keep its invariants (ranges inside the text, on char boundaries). Deterministic:
//! a fixed-seed generator, so a failure replays exactly.

use medic::detect;
use medic::event::{Detection, Origin};
use medic::fingerprint::{Fingerprinter, MinerConfig};
use medic::parse::{Format, ParseConfig, Parser};

/// xorshift64*: enough randomness for input shapes, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const PIECES: &[&[u8]] = &[
    b"{\"log\":\"",
    b"\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-24T10:00:00Z\"}",
    b"{\"level\":\"error\",\"msg\":",
    b"\"}",
    b"\\u0000",
    b"\\ud800",
    b"ERROR ",
    b"Traceback (most recent call last):",
    b"  File \"x.py\", line 1, in f",
    b"\tat com.a.B.c(B.java:1)",
    b"Caused by: java.io.IOException: x",
    b"panic: runtime error",
    b"goroutine 1 [running]:",
    b"java.lang.IllegalStateException: boom",
    b"Jun 14 15:16:01 ",
    b"2026-11-24 10:00:00,123 ",
    b"fe80::1%eth0 ",
    b"00:1b:44:11:3a:b7 ",
    b"http://a/b?c=d ",
    b"/var/log/x: ",
    b"()",
    b"[]",
    b"\"\"",
    b"::::",
    b"......",
    b"\xff\xfe",
    b"\xe2\x82",
    b"\xf0\x9f\x98\x80",
    b"\x00\x07\x1b",
    b"connection refused ",
    b"HTTP/1.1\" 503 ",
    b"status=404 /healthz ",
];

fn line(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(12) {
        match rng.below(4) {
            0 => {
                let n = rng.below(40) as usize;
                out.extend((0..n).map(|_| rng.next() as u8));
            }
            1 => {
                // A long token: words, digits and dots, up to 4 KiB.
                let n = rng.below(4096) as usize;
                out.extend((0..n).map(|i| {
                    if i % 7 == 6 {
                        b'.'
                    } else {
                        b'a' + (rng.below(26) as u8)
                    }
                }));
            }
            _ => out.extend_from_slice(PIECES[rng.below(PIECES.len() as u64) as usize]),
        }
        if rng.below(3) == 0 {
            out.push(b' ');
        }
    }
    out.retain(|b| *b != b'\n');
    out
}

#[test]
fn hostile_lines_never_panic_and_events_keep_their_invariants() {
    let rules = detect::load_embedded().expect("rules");
    let origin = Origin {
        kind: "replay",
        name: "fuzz".into(),
        ..Origin::default()
    };
    for (seed, format) in [
        (1u64, Format::Auto),
        (2, Format::DockerJson),
        (3, Format::Plain),
        (4, Format::Json),
    ] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let cfg = ParseConfig {
            format,
            max_line_bytes: 2048,
            ..ParseConfig::default()
        };
        let mut parser = Parser::new(&cfg).expect("config");
        let mut detector = detect::Detector::new(&rules);
        let mut fp = Fingerprinter::new(MinerConfig {
            max_templates: 500,
            ..MinerConfig::default()
        });
        let mut out = Detection::default();
        let mut events = 0;
        for i in 0..5_000u64 {
            let l = line(&mut rng);
            let truncated = l.len() > cfg.max_line_bytes;
            let l = &l[..l.len().min(cfg.max_line_bytes)];
            let mut check = |ev: &medic::event::Event| {
                for r in [&ev.message, &ev.error, &ev.stack] {
                    assert!(
                        r.start <= r.end && r.end <= ev.text.len(),
                        "range {r:?} outside text"
                    );
                    assert!(ev.text.is_char_boundary(r.start) && ev.text.is_char_boundary(r.end));
                }
                assert!(!ev.text.bytes().any(|b| b == 0), "NUL bytes are replaced");
                detector.detect(ev, &origin, &mut out);
                let f = fp.fingerprint(ev);
                let _ = fp.template(ev, &f);
                events += 1;
            };
            if let Some(ev) = parser.push(l, truncated, i) {
                check(ev);
            }
            if let Some(ev) = parser.flush_due(i) {
                check(ev);
            }
        }
        if let Some(ev) = parser.finish() {
            events += 1;
            assert!(ev.message.end <= ev.text.len());
        }
        assert!(events > 1000, "{format:?}: {events} events");
        assert_eq!(parser.stats().lines, 5_000);
        assert!(fp.miner().live_templates() <= 501);
    }
}
