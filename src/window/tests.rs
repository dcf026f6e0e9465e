use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::Spike;
use super::*;
use crate::event::duration;
use crate::event::{Fingerprint, IncidentState, Severity, Trigger};

const S: u64 = 1000;
const M: u64 = 60 * S;

fn cfg() -> WindowConfig {
    WindowConfig {
        group_wait: Duration::from_secs(30),
        group_interval: Duration::from_secs(300),
        repeat_interval: Duration::from_secs(3600),
        resolve_after: Duration::from_secs(900),
        spike: Spike {
            enabled: false,
            ..Spike::default()
        },
        ..WindowConfig::default()
    }
}

fn hit(t: u64, service: &str, fp: u64, severity: Severity) -> Hit {
    Hit {
        time_ms: t,
        key: IncidentKey {
            service: service.into(),
            fingerprint: Fingerprint(fp),
        },
        rules: vec![format!("rule-{}", severity.as_str()).into()],
        severity,
        inhibits: false,
        template: format!("template {fp}").into(),
        text: format!("line at {t}"),
        source: service.into(),
        labels: Vec::new(),
        new_template: false,
        route: fp,
        threshold: None,
    }
}

/// Drive a table: records (time, fp, severity) in order, then advance to `until`.
fn drive(cfg: WindowConfig, records: &[(u64, u64, Severity)], until: u64) -> Vec<Incident> {
    let mut t = Table::new(cfg);
    let mut out = Vec::new();
    for &(time, fp, sev) in records {
        t.advance(time.saturating_sub(1), &mut out);
        t.record(hit(time, "api", fp, sev), false, false);
    }
    t.advance(until, &mut out);
    out
}

fn brief(out: &[Incident]) -> Vec<(IncidentState, u64, u64, u64)> {
    // (state, emitted-at proxy = last_seen, count, count_in_window)
    out.iter()
        .map(|i| (i.state, i.last_seen_ms, i.count, i.count_in_window))
        .collect()
}

#[test]
fn threshold_opens_only_at_n_within_w() {
    use Severity::Medium;
    // Medium: 5 within 60 s. Four in a minute do nothing.
    let four: Vec<_> = (0..4).map(|i| (i * 10 * S, 1, Medium)).collect();
    assert!(drive(cfg(), &four, 10 * M).is_empty());
    // Five spread over more than a minute do nothing either.
    let slow: Vec<_> = (0..5).map(|i| (i * 20 * S, 1, Medium)).collect();
    assert!(drive(cfg(), &slow, 10 * M).is_empty());
    // Five within a minute open it; the first notification waits group_wait.
    let five: Vec<_> = (0..5).map(|i| (i * 10 * S, 1, Medium)).collect();
    let out = drive(cfg(), &five, 40 * S + 30 * S - 1);
    assert!(out.is_empty(), "not before group_wait: {out:?}");
    let out = drive(cfg(), &five, 40 * S + 30 * S);
    assert_eq!(brief(&out), [(IncidentState::Open, 40 * S, 5, 5)]);
    assert_eq!(out[0].trigger, Trigger::Threshold);
}

#[test]
fn critical_opens_on_first_occurrence_and_group_wait_collects_the_burst() {
    // 1,000 lines in 10 s: one incident, one notification carrying all of them.
    let burst: Vec<_> = (0..1000).map(|i| (i * 10, 7, Severity::Critical)).collect();
    let out = drive(cfg(), &burst, 5 * M);
    assert_eq!(out.len(), 1, "{:?}", brief(&out));
    assert_eq!(out[0].state, IncidentState::Open);
    assert_eq!(out[0].count, 1000);
    assert_eq!(out[0].count_in_window, 1000);
    assert_eq!(out[0].samples.len(), 6);
    assert_eq!(out[0].samples[0].text, "line at 0");
    assert_eq!(out[0].samples[5].text, "line at 9990");
}

#[test]
fn group_interval_spaces_updates() {
    use Severity::High;
    let recs = [
        (0, 1, High),
        (60 * S, 1, High),
        (120 * S, 1, High),
        (400 * S, 1, High),
    ];
    let out = drive(cfg(), &recs, 700 * S);
    // Open at 30 s (1 record); records at 60 s and 120 s wait for 30 + 300 = 330 s; the
    // one at 400 s waits for 330 + 300 = 630 s.
    assert_eq!(
        brief(&out),
        [
            (IncidentState::Open, 0, 1, 1),
            (IncidentState::Updated, 120 * S, 3, 2),
            (IncidentState::Updated, 400 * S, 4, 1),
        ]
    );
}

#[test]
fn resolves_after_quiet_and_reopens_as_a_regression_with_the_same_id() {
    use Severity::High;
    let recs = [(0, 1, High), (20 * M, 1, High)];
    let out = drive(cfg(), &recs, 40 * M);
    let states: Vec<_> = out.iter().map(|i| (i.state, i.regression)).collect();
    assert_eq!(
        states,
        [
            (IncidentState::Open, false),
            (IncidentState::Resolved, false),
            (IncidentState::Reopened, true),
            (IncidentState::Resolved, true),
        ]
    );
    assert!(
        out.iter().all(|i| i.id == out[0].id),
        "one id across the lifecycle"
    );
    assert_eq!(out[2].count, 2);
}

#[test]
fn a_rule_threshold_overrides_the_severity_default() {
    let mut t = Table::new(cfg());
    let mut out = Vec::new();
    for i in 0..3u64 {
        let mut h = hit(i * S, "api", 1, Severity::Critical);
        h.threshold = Some(crate::event::CountWithin {
            count: 3,
            within_ms: M,
        });
        t.record(h, false, false);
        t.advance(i * S, &mut out);
    }
    t.advance(2 * M, &mut out);
    assert_eq!(
        brief(&out),
        [(IncidentState::Open, 2 * S, 3, 3)],
        "critical, but the rule asks for 3"
    );
}

#[test]
fn repeat_interval_resends_an_open_incident_without_news() {
    let mut c = cfg();
    c.resolve_after = Duration::from_secs(3 * 3600);
    c.repeat_interval = Duration::from_secs(3600);
    // Open at 30 s, then a repeat at 30 s + 1 h and at 30 s + 2 h.
    let out = drive(c, &[(0, 1, Severity::High)], 2 * 3600 * S + 30 * S);
    assert_eq!(
        out.iter().map(|i| i.state).collect::<Vec<_>>(),
        [
            IncidentState::Open,
            IncidentState::Updated,
            IncidentState::Updated
        ]
    );
}

#[test]
fn new_fingerprint_opens_a_low_severity_incident_at_once() {
    let mut t = Table::new(cfg());
    let mut out = Vec::new();
    t.record(hit(0, "api", 9, Severity::Low), true, false);
    t.advance(M, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].trigger, Trigger::NewFingerprint);
    // Without the flag, one low record is just counted.
    let out = drive(cfg(), &[(0, 9, Severity::Low)], M);
    assert!(out.is_empty());
}

#[test]
fn spike_over_the_baseline_opens_an_incident() {
    let mut c = cfg();
    c.spike = Spike {
        enabled: true,
        window: Duration::from_secs(60),
        factor: 5.0,
        min_count: 10,
        min_history: 5,
    };
    // Two a minute for six minutes: a baseline, below the low threshold (20 in 5 min).
    let mut recs: Vec<_> = (0..6)
        .flat_map(|m| {
            [
                (m * M, 3, Severity::Low),
                (m * M + 30 * S, 3, Severity::Low),
            ]
        })
        .collect();
    assert!(drive(c.clone(), &recs, 7 * M).is_empty());
    // Then ten within one minute: five times the baseline.
    recs.extend((0..10).map(|i| (6 * M + i * S, 3, Severity::Low)));
    let out = drive(c, &recs, 8 * M);
    assert_eq!(out.len(), 1, "{:?}", brief(&out));
    assert_eq!(out[0].trigger, Trigger::Spike);
}

#[test]
fn inhibition_suppresses_other_incidents_of_the_service_and_lists_them() {
    let mut t = Table::new(cfg());
    let mut out = Vec::new();
    let mut oom = hit(0, "api", 1, Severity::Critical);
    oom.inhibits = true;
    t.inhibit(&oom.key, 0);
    t.record(oom, false, false);
    t.record(hit(S, "api", 2, Severity::High), false, false);
    // Another service is not affected.
    t.record(hit(2 * S, "db", 3, Severity::High), false, false);
    t.advance(2 * M, &mut out);
    let opened: Vec<_> = out
        .iter()
        .map(|i| (&*i.key.service, i.key.fingerprint.0))
        .collect();
    assert_eq!(opened, [("api", 1), ("db", 3)]);
    assert_eq!(t.stats().inhibited, 1);
    // The suppressed incident speaks up once the inhibition window (5 min) has passed,
    // naming what inhibited it; the inhibitor lists it as related.
    t.advance(6 * M, &mut out);
    let late = out
        .iter()
        .find(|i| i.key.fingerprint.0 == 2)
        .expect("emitted after the window");
    assert_eq!(late.inhibited_by.as_deref(), Some("api/0000000000000001"));
    let mut fin = Vec::new();
    t.finish(&mut fin);
    let inhibitor = fin
        .iter()
        .find(|i| i.key.fingerprint.0 == 1)
        .expect("still open");
    assert_eq!(inhibitor.related, std::slice::from_ref(&late.id));
}

#[test]
fn template_merges_rekey_incidents_into_one() {
    let mut t = Table::new(cfg());
    let mut out = Vec::new();
    // Two early lines under fingerprints that the miner later merges into 30.
    t.record(hit(0, "api", 10, Severity::High), false, false);
    t.record(hit(S, "api", 20, Severity::High), false, false);
    t.alias(Fingerprint(10), Fingerprint(30));
    t.alias(Fingerprint(20), Fingerprint(30));
    t.record(hit(2 * S, "api", 30, Severity::High), false, false);
    t.finish(&mut out);
    assert_eq!(t.len(), 1);
    assert_eq!(out.len(), 1, "{:?}", brief(&out));
    assert_eq!(out[0].key.fingerprint, Fingerprint(30));
    assert_eq!(out[0].count, 3);
    assert_eq!(out[0].first_seen_ms, 0);
}

#[test]
fn finish_emits_the_final_state_of_open_incidents() {
    let recs: Vec<_> = (0..50).map(|i| (i * S, 1, Severity::High)).collect();
    let mut t = Table::new(cfg());
    let mut out = Vec::new();
    for &(time, fp, sev) in &recs {
        t.advance(time.saturating_sub(1), &mut out);
        t.record(hit(time, "api", fp, sev), false, false);
    }
    t.finish(&mut out);
    let last = out.last().expect("final");
    assert_eq!(last.count, 50);
    assert_eq!(
        out.iter()
            .filter(|i| i.state == IncidentState::Open)
            .count(),
        1
    );
}

#[test]
fn state_is_bounded_and_evictions_are_counted() {
    let mut c = cfg();
    c.max_incidents = 1000;
    let mut t = Table::new(c);
    for i in 0..100_000u64 {
        t.record(hit(i, "api", i, Severity::Low), false, false);
    }
    assert!(t.len() <= 1000, "{}", t.len());
    assert!(t.stats().evicted >= 99_000);
}

#[test]
fn a_hot_incident_keeps_one_timer_not_one_per_record() {
    // Regression: every record of an open incident used to push a heap item.
    let mut t = Table::new(cfg());
    let mut out = Vec::new();
    for i in 0..100_000u64 {
        t.advance(i * 10, &mut out);
        t.record(hit(i * 10, "api", 1, Severity::Critical), false, false);
    }
    assert!(t.pending_timers() <= 4, "{}", t.pending_timers());
    t.finish(&mut out);
    assert_eq!(out.last().expect("final").count, 100_000);
}

#[test]
fn durations_parse_and_print() {
    for (s, ms) in [
        ("250ms", 250),
        ("30s", 30_000),
        ("5m", 300_000),
        ("4h", 14_400_000),
        ("1d", 86_400_000),
    ] {
        let d = duration::parse(s).expect(s);
        assert_eq!(d.as_millis() as u64, ms);
        assert_eq!(duration::format(&d), s);
    }
    assert!(
        duration::parse("5 minutes")
            .expect_err("bad unit")
            .contains("unknown unit")
    );
    assert!(
        duration::parse("soon")
            .expect_err("no number")
            .contains("invalid duration")
    );
}

fn collect(cfg: &WindowConfig, hits: Vec<Hit>) -> (Vec<Incident>, Arc<WindowStats>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let hits = Arc::new(hits);
    let stats = run(
        cfg,
        move |f| {
            let (index, peers) = f.shard();
            // Each worker feeds its share, as replay does with files.
            for (i, h) in hits.iter().enumerate() {
                if i % peers == index {
                    f.push(h.clone());
                }
            }
            Ok(())
        },
        move |inc| sink.lock().expect("lock").push(inc),
    )
    .expect("runs");
    let mut out = got.lock().expect("lock").clone();
    out.sort_by(|a, b| {
        (a.key.fingerprint, a.last_seen_ms, a.count).cmp(&(
            b.key.fingerprint,
            b.last_seen_ms,
            b.count,
        ))
    });
    (out, stats)
}

#[test]
fn dataflow_groups_by_key_and_flushes_final_counts_with_one_and_two_workers() {
    let mut hits = Vec::new();
    for i in 0..3000u64 {
        hits.push(hit(i * 100, "api", i % 3, Severity::High));
    }
    for workers in [1, 2] {
        let c = WindowConfig { workers, ..cfg() };
        let (out, stats) = collect(&c, hits.clone());
        for fp in 0..3 {
            let of_fp: Vec<_> = out.iter().filter(|i| i.key.fingerprint.0 == fp).collect();
            assert!(
                of_fp.iter().all(|i| i.id == of_fp[0].id),
                "one incident per key"
            );
            let last = of_fp.iter().max_by_key(|i| i.count).expect("emitted");
            assert_eq!(last.count, 1000, "workers={workers}");
        }
        assert_eq!(stats.records.load(Ordering::Relaxed), 3000);
        assert_eq!(stats.late.load(Ordering::Relaxed), 0);
    }
}

#[test]
fn late_records_are_counted_and_kept() {
    let c = WindowConfig {
        allowed_lateness: Duration::from_secs(1),
        ..cfg()
    };
    let mut hits: Vec<Hit> = (0..600u64)
        .map(|i| hit(i * 100, "api", 1, Severity::High))
        .collect();
    // Ten records from a minute ago arrive after the watermark has moved on.
    hits.extend((0..10).map(|_| hit(0, "api", 1, Severity::High)));
    let (out, stats) = collect(&c, hits);
    assert_eq!(stats.late.load(Ordering::Relaxed), 10);
    let last = out.iter().max_by_key(|i| i.count).expect("emitted");
    assert_eq!(last.count, 610, "late records are counted, not lost");
    assert_eq!(last.late, 10);
}

#[test]
fn a_bounded_worker_waits_for_the_slowest_instead_of_buffering_ahead() {
    use std::sync::atomic::AtomicBool;
    let c = WindowConfig {
        workers: 2,
        ..cfg()
    };
    let lateness = c.allowed_lateness.as_millis() as u64;
    let lead = 60 * S;
    let pushed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let (pushed2, done2, seen2) = (Arc::clone(&pushed), Arc::clone(&done), Arc::clone(&seen));
    let stats = run(
        &c,
        move |f| {
            f.bound_lead(lead);
            if f.shard().0 == 0 {
                // The fast worker: 2,000 s of event time.
                for i in 0..20_000u64 {
                    f.push(hit(i * 100, "api", 1, Severity::High));
                    pushed2.store(i * 100, Ordering::Relaxed);
                }
                done2.store(true, Ordering::Relaxed);
            } else {
                // The slow worker has sent nothing yet: its time is still 0. Give the fast
                // one ample time to run to its end, unless it waits.
                let start = std::time::Instant::now();
                while !done2.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(2) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                seen2.store(pushed2.load(Ordering::Relaxed), Ordering::Relaxed);
                f.push(hit(2_000 * S, "api", 2, Severity::High));
            }
            Ok(())
        },
        |_| {},
    )
    .expect("runs");
    // The fast worker checks its lead every 256 hits (25.6 s of its time here).
    let bound = lead + lateness + 256 * 100;
    let reached = seen.load(Ordering::Relaxed);
    assert!(
        reached <= bound,
        "the fast worker reached {reached} ms while the slow one was at 0 (bound {bound})"
    );
    assert!(
        done.load(Ordering::Relaxed),
        "it went on once the slow one moved"
    );
    assert_eq!(stats.records.load(Ordering::Relaxed), 20_001);
}
