//! Criterion benches per stage (parse, detect, fingerprint) and for the three together, on
//! the docker-json benchmark corpus. Throughput is reported in input bytes; divide by the
//! line count printed at start for lines/s.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use medic::detect::{self, Detector};
use medic::event::{Detection, Event, Origin};
use medic::fingerprint::{Fingerprinter, MinerConfig};
use medic::parse::{ParseConfig, Parser};

mod corpus;

fn parsed(lines: &[Vec<u8>]) -> Vec<Event> {
    let mut p = Parser::new(&ParseConfig::default()).expect("config");
    let mut out = Vec::with_capacity(lines.len());
    for l in lines {
        if let Some(ev) = p.push(l, false, 0) {
            out.push(ev.clone());
        }
    }
    out.extend(p.finish().cloned());
    out
}

fn stages(c: &mut Criterion) {
    let (lines, bytes) = corpus::lines();
    eprintln!("benchmark corpus: {} lines, {} bytes", lines.len(), bytes);
    let rules = detect::load_embedded().expect("rules");
    let events = parsed(&lines);
    let origin = Origin {
        kind: "replay",
        name: "corpus".into(),
        ..Origin::default()
    };

    let mut g = c.benchmark_group("stages");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("parse", |b| {
        b.iter(|| {
            let mut p = Parser::new(&ParseConfig::default()).expect("config");
            let mut n = 0u64;
            for l in &lines {
                if let Some(ev) = p.push(l, false, 0) {
                    n += ev.text.len() as u64;
                }
            }
            black_box(n)
        })
    });
    g.bench_function("detect", |b| {
        let mut d = Detector::new(&rules);
        let mut out = Detection::default();
        b.iter(|| {
            let mut hits = 0u64;
            for ev in &events {
                d.detect(ev, &origin, &mut out);
                hits += u64::from(out.is_hit());
            }
            black_box(hits)
        })
    });
    g.bench_function("fingerprint", |b| {
        // A warm miner, as in production: templates already learnt.
        let mut f = Fingerprinter::new(MinerConfig::default());
        for ev in &events {
            f.fingerprint(ev);
        }
        b.iter(|| {
            let mut x = 0u64;
            for ev in &events {
                x ^= f.fingerprint(ev).fingerprint.0;
            }
            black_box(x)
        })
    });
    g.bench_function("parse+detect+fingerprint", |b| {
        b.iter(|| {
            let mut p = Parser::new(&ParseConfig::default()).expect("config");
            let mut d = Detector::new(&rules);
            let mut f = Fingerprinter::new(MinerConfig::default());
            let mut out = Detection::default();
            let mut x = 0u64;
            for l in &lines {
                if let Some(ev) = p.push(l, false, 0) {
                    d.detect(ev, &origin, &mut out);
                    x ^= f.fingerprint(ev).fingerprint.0;
                }
            }
            black_box(x)
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
