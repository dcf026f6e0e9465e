use super::*;

fn flow_file() -> FlowFile {
    flow::parse(
        "checkout.yaml",
        "name: checkout\npriority: critical\nbase_url: http://127.0.0.1:1\nevery: 1m\nsteps:\n  - navigate: /\n  - click: \"#pay\"\n  - assert_text: Thank you\n",
    )
    .expect("valid")
}

fn run(ff: &FlowFile, at: u64, failed: Option<(usize, &str)>) -> FlowRun {
    let mut r = FlowRun::new(ff);
    r.started_ms = at;
    r.duration_ms = 1000;
    if let Some((i, e)) = failed {
        r.fail_at(i, e.to_string(), false);
    }
    r
}

#[test]
fn one_incident_per_failing_step_resolved_by_a_pass_and_reopened_by_a_recurrence() {
    let dir = tempfile::tempdir().expect("dir");
    let ff = flow_file();
    let mut st = QaState::load(dir.path());
    let a = st.record(
        &run(
            &ff,
            1_000,
            Some((2, "it shows \"Payment failed (code 502)\"")),
        ),
        &ff,
        "/api/qa/artifacts",
    );
    let b = st.record(
        &run(
            &ff,
            61_000,
            Some((2, "it shows \"Payment failed (code 503)\"")),
        ),
        &ff,
        "/api/qa/artifacts",
    );
    let c = st.record(
        &run(
            &ff,
            121_000,
            Some((2, "it shows \"Payment failed (code 504)\"")),
        ),
        &ff,
        "/api/qa/artifacts",
    );
    assert_eq!(a[0].state, IncidentState::Open);
    assert_eq!(
        (b[0].state, c[0].state),
        (IncidentState::Updated, IncidentState::Updated)
    );
    assert!(
        a[0].id == b[0].id && b[0].id == c[0].id,
        "numbers are masked: one incident"
    );
    assert_eq!(c[0].count, 3);
    assert!(
        a[0].template.contains("step 3 (assert text \"Thank you\")"),
        "{}",
        a[0].template
    );
    assert!(a[0].samples[0].text.contains("Steps to reproduce:\n  1. navigate /\n  2. click #pay\n  3. assert text \"Thank you\"   <- fails here"), "{}", a[0].samples[0].text);
    // Persisted: a restart continues the same incident.
    st.save().expect("save");
    let mut st = QaState::load(dir.path());
    let d = st.record(&run(&ff, 181_000, None), &ff, "/x");
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].state, d[0].id.clone()),
        (IncidentState::Resolved, a[0].id.clone())
    );
    assert!(
        st.record(&run(&ff, 241_000, None), &ff, "/x").is_empty(),
        "a pass with nothing open says nothing"
    );
    let e = st.record(
        &run(
            &ff,
            301_000,
            Some((2, "it shows \"Payment failed (code 500)\"")),
        ),
        &ff,
        "/x",
    );
    assert_eq!(
        (e[0].state, e[0].regression, e[0].id.clone()),
        (IncidentState::Reopened, true, a[0].id.clone())
    );
    // A different failure resolves the old incident and opens another.
    let f = st.record(
        &run(&ff, 361_000, Some((1, "click #pay: no element matches"))),
        &ff,
        "/x",
    );
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].state, IncidentState::Resolved);
    assert_eq!(f[1].state, IncidentState::Open);
    assert_ne!(f[1].key.fingerprint, a[0].key.fingerprint);
}

#[test]
fn infrastructure_failures_are_labelled_for_the_classifier() {
    let dir = tempfile::tempdir().expect("dir");
    let ff = flow_file();
    let mut r = FlowRun::new(&ff);
    r.fail_infrastructure("cannot start the browser /nope: No such file".into());
    let inc = QaState::load(dir.path()).record(&r, &ff, "/x");
    assert!(
        inc[0]
            .labels
            .iter()
            .any(|(k, v)| k == "error_type" && v == "infrastructure")
    );
    assert!(inc[0].template.starts_with("QA flow checkout cannot run"));
    let c = crate::escalate::rules::RuleClassifier.classify(&inc[0]);
    assert_eq!(c.error_type, crate::event::ErrorType::Infrastructure);
}

#[test]
fn junit_lists_each_flow_and_escapes() {
    let ff = flow_file();
    let ok = run(&ff, 0, None);
    let bad = run(&ff, 0, Some((1, "no <button> & \"more\"")));
    let x = junit(&[ok, bad]);
    assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
    assert!(
        x.contains("message=\"step 2: no &lt;button&gt; &amp; &quot;more&quot;\""),
        "{x}"
    );
}

#[test]
fn schedules_every_with_jitter_and_cron() {
    let mut f = flow_file().flow;
    let j = Duration::from_secs(10);
    let now = 1_796_175_000_000;
    let first = next_due(&f, 0, j, now).expect("due");
    assert!((now..now + 10_000).contains(&first));
    let next = next_due(&f, now, j, now).expect("due");
    assert!((now + 60_000..now + 70_000).contains(&next));
    f.every = None;
    f.cron = Some("*/30 * * * *".into());
    let c = next_due(&f, now, Duration::ZERO, now + 5_000).expect("due");
    assert_eq!(c, now + 30 * 60_000);
    f.cron = None;
    assert_eq!(next_due(&f, 0, j, now), None, "on demand only");
}

#[test]
fn host_cpu_busy_share_is_read_from_proc_stat() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("rt");
    let busy = rt
        .block_on(super::schedule::cpu_busy(Duration::from_millis(200)))
        .expect("/proc/stat is readable");
    assert!((0.0..=1.0).contains(&busy), "{busy}");
}
