//! Criterion benches for the window stage: the incident state machine alone, and the
//! timely dataflow around it, over the hits of the benchmark corpus (built once through
//! parse → detect → fingerprint).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use medic::detect;
use medic::event::{Hit, IncidentKey, Origin};
use medic::fingerprint::MinerConfig;
use medic::parse::ParseConfig;
use medic::pipeline::Core;
use medic::window::{self, Table, WindowConfig};

mod corpus;

fn hits() -> Vec<Hit> {
    let (lines, _) = corpus::lines();
    let rules = detect::load_embedded().expect("rules");
    let mut core = Core::new(&ParseConfig::default(), MinerConfig::default(), &rules)
        .expect("config")
        .fingerprint_all(false);
    let origin = Origin {
        kind: "replay",
        name: "corpus".into(),
        ..Origin::default()
    };
    let mut out = Vec::new();
    let data: Vec<u8> = lines.join(&b'\n');
    core.run(&data[..], &origin, |seen| {
        let (Some(fp), Some(sev)) = (seen.fingerprint, seen.detection.severity) else {
            return;
        };
        out.push(Hit {
            time_ms: seen.event.time_ns.map_or(0, |t| (t / 1_000_000) as u64),
            key: IncidentKey {
                service: "corpus".into(),
                fingerprint: fp.fingerprint,
            },
            rules: vec![std::sync::Arc::clone(
                rules.rule(seen.detection.rules[0]).shared_id(),
            )],
            severity: sev,
            inhibits: false,
            template: seen.fingerprinter.shared_template(seen.event, &fp),
            text: seen.event.text.clone(),
            source: "corpus".into(),
            labels: Vec::new(),
            new_template: fp.new_template,
            route: fp.route,
            threshold: None,
        });
    })
    .expect("in memory");
    out
}

fn window(c: &mut Criterion) {
    let hits = hits();
    eprintln!("window benchmark: {} hits", hits.len());
    let mut g = c.benchmark_group("window");
    g.sample_size(10);
    g.throughput(Throughput::Elements(hits.len() as u64));
    g.bench_function("table", |b| {
        b.iter(|| {
            let mut t = Table::new(WindowConfig::default());
            let mut out = Vec::new();
            for h in &hits {
                t.advance(h.time_ms.saturating_sub(1), &mut out);
                t.record(h.clone(), false, false);
            }
            t.finish(&mut out);
            black_box(out.len())
        })
    });
    let shared = Arc::new(hits.clone());
    for workers in [1, 2] {
        g.bench_function(format!("dataflow/{workers}-workers"), |b| {
            b.iter(|| {
                let n = Arc::new(AtomicU64::new(0));
                let sink = Arc::clone(&n);
                let hits = Arc::clone(&shared);
                let cfg = WindowConfig {
                    workers,
                    ..WindowConfig::default()
                };
                window::run(
                    &cfg,
                    move |f| {
                        let (i, peers) = f.shard();
                        for h in hits.iter().skip(i).step_by(peers) {
                            f.push(h.clone());
                        }
                        Ok(())
                    },
                    move |_| {
                        sink.fetch_add(1, Ordering::Relaxed);
                    },
                )
                .expect("runs");
                black_box(n.load(Ordering::Relaxed))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, window);
criterion_main!(benches);
