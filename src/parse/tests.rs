use super::*;
use crate::event::{Level, Stream};

fn parser(cfg: ParseConfig) -> Parser {
    Parser::new(&cfg).expect("valid config")
}

fn single_line() -> ParseConfig {
    let mut cfg = ParseConfig::default();
    cfg.multiline.enabled = false;
    cfg
}

/// Push every line, then finish; collect (text, message, level, stream, lines) per event.
fn events(p: &mut Parser, lines: &[&[u8]]) -> Vec<Event> {
    let mut out = Vec::new();
    for l in lines {
        if let Some(ev) = p.push(l, false, 0) {
            out.push(ev.clone());
        }
    }
    if let Some(ev) = p.finish() {
        out.push(ev.clone());
    }
    out
}

#[test]
fn docker_json_record_gives_stream_time_level_and_message() {
    let mut p = parser(single_line());
    let line = br#"{"log":"2026-01-01 10:00:00 ERROR [main] com.acme.Api: payment failed\n","stream":"stderr","time":"2026-01-01T10:00:00.5Z"}"#;
    let ev = p
        .push(line, false, 0)
        .expect("single-line mode emits at once")
        .clone();
    assert_eq!(ev.stream, Stream::Stderr);
    assert_eq!(ev.time_ns, Some(1_767_261_600_500_000_000));
    assert_eq!(ev.level, Some(Level::Error));
    assert_eq!(ev.message(), "payment failed");
    assert_eq!(
        ev.text,
        "2026-01-01 10:00:00 ERROR [main] com.acme.Api: payment failed"
    );
    assert_eq!(p.stats().docker_records, 1);
    assert!(ev.fallbacks.is_empty());
}

#[test]
fn application_json_inside_docker_log_field_is_parsed() {
    let mut p = parser(single_line());
    let line = br#"{"log":"{\"level\":\"warn\",\"msg\":\"slow query\",\"error\":\"timeout after 5s\",\"ts\":1767261600}\n","stream":"stdout","time":"2026-01-01T10:00:01Z"}"#;
    let ev = p.push(line, false, 0).expect("emitted").clone();
    assert_eq!(ev.level, Some(Level::Warn));
    assert_eq!(ev.message(), "slow query");
    assert_eq!(ev.error(), "timeout after 5s");
    assert!(
        ev.text.contains("timeout after 5s"),
        "rules see the error field"
    );
    // The Docker record's time wins over the application's.
    assert_eq!(ev.time_ns, Some(1_767_261_601_000_000_000));
    assert_eq!(ev.stream, Stream::Stdout);
}

#[test]
fn application_json_line_takes_common_keys() {
    let cases: &[(&[u8], Option<Level>, &str, &str)] = &[
        (
            br#"{"severity":"ERROR","message":"boom","stack_trace":"at a.b(C.java:1)"}"#,
            Some(Level::Error),
            "boom",
            "at a.b(C.java:1)",
        ),
        (
            br#"{"lvl":"info","msg":"ok","nested":{"level":"error","msg":"no"}}"#,
            Some(Level::Info),
            "ok",
            "",
        ),
        (
            br#"{"level":"fatal","err":"disk full","message":"write failed"}"#,
            Some(Level::Fatal),
            "write failed",
            "",
        ),
    ];
    for (line, level, msg, stack) in cases {
        let mut p = parser(single_line());
        let ev = p.push(line, false, 0).expect("emitted").clone();
        assert_eq!(ev.level, *level, "{}", String::from_utf8_lossy(line));
        assert_eq!(ev.message(), *msg);
        assert_eq!(ev.stack(), *stack);
    }
}

#[test]
fn malformed_json_falls_back_to_plain_text_and_is_counted() {
    let mut p = parser(single_line());
    let ev = p
        .push(br#"{"log":"unterminated"#, false, 0)
        .expect("emitted")
        .clone();
    assert_eq!(ev.text, r#"{"log":"unterminated"#);
    assert!(ev.fallbacks.contains(Fallback::MalformedJson));
    assert_eq!(p.stats().fallback(Fallback::MalformedJson), 1);
}

#[test]
fn forced_docker_format_counts_non_json_lines() {
    let mut cfg = single_line();
    cfg.format = Format::DockerJson;
    let mut p = parser(cfg);
    let ev = p.push(b"plain words", false, 0).expect("emitted").clone();
    assert_eq!(ev.text, "plain words");
    assert_eq!(p.stats().fallback(Fallback::MalformedJson), 1);
}

#[test]
fn invalid_utf8_is_replaced_and_counted() {
    let mut p = parser(single_line());
    let ev = p
        .push(b"bad \xff\xfe bytes ERROR", false, 0)
        .expect("emitted")
        .clone();
    assert_eq!(ev.text, "bad \u{fffd}\u{fffd} bytes ERROR");
    assert_eq!(p.stats().fallback(Fallback::InvalidUtf8), 1);
}

#[test]
fn nul_and_binary_bytes_are_replaced_and_counted() {
    let mut p = parser(single_line());
    let ev = p
        .push(b"a\x00b\x07c\x1bd\x7f\te", false, 0)
        .expect("emitted")
        .clone();
    assert_eq!(ev.text, "a\u{fffd}b\u{fffd}c\u{fffd}d\u{fffd}\te");
    assert!(ev.fallbacks.contains(Fallback::ControlBytes));
    // Escaped NULs inside JSON strings are caught after decoding too.
    let ev = p
        .push(br#"{"msg":"x\u0000y"}"#, false, 0)
        .expect("emitted")
        .clone();
    assert_eq!(ev.message(), "x\u{fffd}y");
    assert_eq!(p.stats().fallback(Fallback::ControlBytes), 2);
}

#[test]
fn truncated_lines_are_flagged_and_counted() {
    let mut p = parser(single_line());
    let ev = p.push(b"ERROR cut here", true, 0).expect("emitted").clone();
    assert!(ev.fallbacks.contains(Fallback::Truncated));
    assert_eq!(p.stats().fallback(Fallback::Truncated), 1);
}

#[test]
fn a_ten_mib_line_is_truncated_without_panicking() {
    let mut cfg = single_line();
    cfg.max_line_bytes = 64 * 1024;
    let mut p = parser(cfg);
    let mut input = b"{\"log\":\"".to_vec();
    input.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    input.extend_from_slice(b"\\n\"}\nnext line\n");
    let mut reader = crate::source::LineReader::new(&input[..], p.max_line_bytes());
    let mut got = Vec::new();
    while let Some((line, truncated)) = reader.next_line().expect("in memory") {
        if let Some(ev) = p.push(line, truncated, 0) {
            got.push(ev.clone());
        }
    }
    assert_eq!(got.len(), 2);
    assert!(got[0].text.len() <= 64 * 1024);
    assert!(got[0].fallbacks.contains(Fallback::Truncated));
    // The cut JSON is malformed: counted, kept as text.
    assert!(got[0].fallbacks.contains(Fallback::MalformedJson));
    assert_eq!(got[1].text, "next line");
}

#[test]
fn log_format_splits_header_and_reads_level() {
    let mut cfg = single_line();
    cfg.log_format = Some("<Date> <Time> <Level> \\[<Process>\\] <Component>: <Content>".into());
    let mut p = parser(cfg);
    let ev = p
        .push(
            b"2015-10-18 18:01:47,978 WARN [main] org.apache.Foo: Created MRAppMaster for app_1",
            false,
            0,
        )
        .expect("emitted")
        .clone();
    assert_eq!(ev.level, Some(Level::Warn));
    assert_eq!(ev.message(), "Created MRAppMaster for app_1");
    // A line the header does not fit keeps the whole line as its message.
    let ev = p.push(b"garbage", false, 0).expect("emitted").clone();
    assert_eq!(ev.message(), "garbage");
}

#[test]
fn log_format_errors_are_typed() {
    for bad in ["<Date> <Time>", "<Content> <Content>", "<Date> ( <Content>"] {
        let cfg = ParseConfig {
            log_format: Some(bad.into()),
            ..ParseConfig::default()
        };
        let err = Parser::new(&cfg).expect_err(bad);
        assert!(matches!(err, ParseError::LogFormat { .. }), "{bad}: {err}");
        assert!(
            err.to_string().contains(bad),
            "the error names the format: {err}"
        );
    }
}

#[test]
fn header_less_lines_find_level_and_message() {
    let cases = [
        (
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block",
            Some(Level::Info),
            "PacketResponder 1 for block",
        ),
        (
            "2026-01-01T10:00:00Z [ERROR] db: connection refused",
            Some(Level::Error),
            "db: connection refused",
        ),
        ("level=warn msg=slow", Some(Level::Warn), "msg=slow"),
        ("E1124 10:00:00 something", None, "E1124 10:00:00 something"),
        (
            "an error happened in free text",
            None,
            "an error happened in free text",
        ),
        ("W: disk almost full", None, "W: disk almost full"),
        (
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure",
            None,
            "authentication failure",
        ),
        (
            "Jul  6 22:26:19 calvisitor-10-105-162-178 WindowServer[184]: send_datagram_available_ping: pid 996",
            None,
            "send_datagram_available_ping: pid 996",
        ),
        (
            "Jun 14 15:16:01 host kernel: ERROR disk sda failed",
            Some(Level::Error),
            "disk sda failed",
        ),
        ("Jun 14 15:16:01 host no tag here", None, "no tag here"),
        (
            "2017-05-16 00:00:00.008 25746 INFO nova.osapi_compute.wsgi.server [req-38 - - -] 10.11.10.1 \"GET /v2\" status: 200",
            Some(Level::Info),
            "10.11.10.1 \"GET /v2\" status: 200",
        ),
        ("INFO 1.2.3.4 [x] y", Some(Level::Info), "1.2.3.4 [x] y"),
        (
            "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:ZooKeeperServer@595] - Established session",
            Some(Level::Info),
            "Established session",
        ),
    ];
    for (line, level, msg) in cases {
        let (l, m) = plain::split(line);
        assert_eq!((l, m), (level, msg), "{line}");
    }
}

#[test]
fn syslog_timestamps_take_the_configured_year() {
    let cfg = ParseConfig {
        syslog_year: Some(2005),
        ..single_line()
    };
    let mut p = parser(cfg);
    let ev = p
        .push(
            b"Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass; user unknown",
            false,
            0,
        )
        .expect("emitted")
        .clone();
    assert_eq!(ev.time_ns, parse_rfc3339("2005-06-14T15:16:01Z"));
    let ev = p
        .push(b"Jul  1 09:00:55 calvisitor kernel[0]: x", false, 0)
        .expect("emitted")
        .clone();
    assert_eq!(ev.time_ns, parse_rfc3339("2005-07-01T09:00:55Z"));
    for not_a_time in [
        "June 14 15:16:01 x",
        "Jun 32 15:16:01 x",
        "Jun 14 25:16:01 x",
        "ERROR Jun 14 15:16:01",
    ] {
        let ev = p
            .push(not_a_time.as_bytes(), false, 0)
            .expect("emitted")
            .clone();
        assert_eq!(ev.time_ns, None, "{not_a_time}");
    }
    // Unset, the year is this year's.
    let mut p = parser(single_line());
    let ev = p
        .push(b"Jan  1 00:00:00 host x", false, 0)
        .expect("emitted")
        .clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let t = ev.time_ns.expect("a time") / 1_000_000_000;
    assert!(t <= now && now - t < 366 * 86_400, "{t} vs {now}");
}

#[test]
fn civil_years_of_days() {
    for (date, year) in [
        ("1970-01-01", 1970),
        ("2000-02-29", 2000),
        ("2005-12-31", 2005),
        ("2026-01-01", 2026),
        ("2026-11-24", 2026),
    ] {
        let days = parse_rfc3339(&format!("{date}T00:00:00Z")).expect("date") / 86_400_000_000_000;
        assert_eq!(json::year_of_day(days), year, "{date}");
    }
}

#[test]
fn rfc3339_parsing() {
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339("2026-01-01T00:00:00.000000001Z"),
        Some(1_767_225_600_000_000_001)
    );
    assert_eq!(
        parse_rfc3339("2026-01-01T02:00:00+02:00"),
        Some(1_767_225_600_000_000_000)
    );
    assert_eq!(
        parse_rfc3339("2026-01-01 00:00:00,5"),
        Some(1_767_225_600_500_000_000)
    );
    assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
    assert_eq!(parse_rfc3339("yesterday"), None);
}

#[test]
fn fractions_of_every_length_parse_to_nanoseconds() {
    let base = 1_767_225_600_000_000_000i64;
    for (fraction, nanos) in [
        (".123456789Z", Some(123_456_789)),
        (".999999999Z", Some(999_999_999)),
        (".000000000Z", Some(0)),
        (".123456789", Some(123_456_789)),
        (".123456789+01:00", Some(123_456_789 - 3_600_000_000_000)),
        (".1234567891Z", Some(123_456_789)),
        (".12345678Z", Some(123_456_780)),
        (",5Z", Some(500_000_000)),
        (".12345x789Z", None),
        (".1234/6789Z", None),
        (".12345678:Z", None),
    ] {
        let ts = format!("2026-01-01T00:00:00{fraction}");
        assert_eq!(parse_rfc3339(&ts), nanos.map(|n| base + n), "{ts}");
    }
}

#[test]
fn the_minute_cache_parses_exactly_as_the_parser_does() {
    let mut cache = crate::parse::Rfc3339Cache::default();
    let stamps = [
        "2026-01-01T00:00:00.000000001Z",
        "2026-01-01T00:00:59.5Z",
        "2026-01-01T00:00:61Z",
        "2026-01-01T00:00:07+02:00",
        "2026-01-01T00:00:0xZ",
        "2026-01-01T00:01:00Z",
        "2026-13-01T00:01:00Z",
        "2026-13-01T00:01:00Z",
        "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0:00Z",
        "2026-01-01T00:01",
        "2026-01-01T00:01:00Zjunk",
        "1970-01-01T00:00:00Z",
        "1970-01-01T00:00:01Z",
    ];
    for s in stamps {
        assert_eq!(cache.parse(s), parse_rfc3339(s), "{s:?}");
    }
    assert_eq!(cache.parse("1970-01-01T00:00:01Z"), Some(1_000_000_000));
}

#[test]
fn java_stack_trace_is_one_event() {
    let mut p = parser(ParseConfig::default());
    let evs = events(
        &mut p,
        &[
            b"2026-01-01 10:00:00 ERROR [http-1] c.a.Api: request failed",
            b"java.lang.IllegalStateException: queue closed",
            b"\tat com.acme.Queue.put(Queue.java:42)",
            b"\tat com.acme.Api.handle(Api.java:7)",
            b"Caused by: java.io.IOException: broken pipe",
            b"\t... 12 more",
            b"2026-01-01 10:00:01 INFO [http-1] c.a.Api: next",
        ],
    );
    // The exception header joins the line that logged it; the frames and cause follow.
    assert_eq!(evs.len(), 2, "{evs:#?}");
    assert_eq!(evs[0].lines, 6);
    assert_eq!(evs[0].level, Some(Level::Error));
    assert_eq!(evs[0].message(), "request failed");
    assert!(
        evs[0]
            .stack()
            .starts_with("java.lang.IllegalStateException: queue closed\n\tat com.acme.Queue.put")
    );
    assert!(evs[0].stack().ends_with("... 12 more"));
    assert_eq!(evs[1].message(), "next");
    assert_eq!(p.stats().multiline_joins, 5);
}

#[test]
fn logged_python_traceback_joins_its_log_line() {
    let mut p = parser(ParseConfig::default());
    let evs = events(
        &mut p,
        &[
            b"ERROR:root:charge failed",
            b"Traceback (most recent call last):",
            b"  File \"/app/svc.py\", line 12, in handle",
            b"KeyError: 'amount'",
            b"Error: connect ECONNREFUSED 127.0.0.1:6379",
        ],
    );
    assert_eq!(evs.len(), 2, "{evs:#?}");
    assert_eq!(evs[0].lines, 4);
    // A Node.js error line is a record of its own, not a Java exception header.
    assert_eq!(evs[1].lines, 1);
}

#[test]
fn json_without_a_message_key_keeps_the_whole_object() {
    let mut p = parser(single_line());
    let ev = p
        .push(br#"{"log": 12, "stream": ["weird"]}"#, false, 0)
        .expect("emitted")
        .clone();
    assert_eq!(ev.message(), r#"{"log": 12, "stream": ["weird"]}"#);
}

#[test]
fn python_traceback_is_one_event_including_the_exception_line() {
    let mut p = parser(ParseConfig::default());
    let evs = events(
        &mut p,
        &[
            b"Traceback (most recent call last):",
            b"  File \"/app/svc.py\", line 12, in handle",
            b"    total = int(x)",
            b"ValueError: invalid literal for int() with base 10: 'abc'",
            b"INFO next request",
        ],
    );
    assert_eq!(evs.len(), 2, "{evs:#?}");
    assert_eq!(evs[0].lines, 4);
    assert!(evs[0].text.ends_with("'abc'"));
    assert_eq!(evs[1].text, "INFO next request");
}

#[test]
fn go_panic_is_one_event() {
    let mut p = parser(ParseConfig::default());
    let evs = events(
        &mut p,
        &[
            b"panic: runtime error: invalid memory address or nil pointer dereference",
            b"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2b1c]",
            b"",
            b"goroutine 1 [running]:",
            b"main.handler(0x0)",
            b"\t/app/main.go:12 +0x1d",
            b"main.main()",
            b"\t/app/main.go:20 +0x25",
            b"exit status 2",
            b"listening on :8080",
        ],
    );
    assert_eq!(evs.len(), 2, "{evs:#?}");
    assert_eq!(evs[0].lines, 9);
    assert_eq!(evs[1].text, "listening on :8080");
}

#[test]
fn docker_partial_lines_are_merged_without_newline() {
    let mut p = parser(ParseConfig::default());
    let first = format!(
        r#"{{"log":"ERROR {}","stream":"stdout","time":"2026-01-01T00:00:00Z"}}"#,
        "a".repeat(16 * 1024 - 6)
    );
    let second = r#"{"log":"tail of the line\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}"#;
    let third = r#"{"log":"next\n","stream":"stdout","time":"2026-01-01T00:00:01Z"}"#;
    let evs = events(
        &mut p,
        &[first.as_bytes(), second.as_bytes(), third.as_bytes()],
    );
    assert_eq!(evs.len(), 2);
    assert_eq!(
        evs[0].text.len(),
        16 * 1024 - 6 + 6 + "tail of the line".len()
    );
    assert!(evs[0].text.ends_with("aatail of the line"));
    assert!(!evs[0].text.contains('\n'));
    assert_eq!(evs[0].lines, 2);
    assert_eq!(evs[1].text, "next");
}

#[test]
fn multiline_bounds_cut_and_count() {
    let mut cfg = ParseConfig::default();
    cfg.multiline.max_lines = 3;
    let mut p = parser(cfg);
    let evs = events(
        &mut p,
        &[b"ERROR head", b"  one", b"  two", b"  three", b"  four"],
    );
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].lines, 3);
    assert!(evs[1].fallbacks.contains(Fallback::MultilineBound));
    assert_eq!(p.stats().fallback(Fallback::MultilineBound), 1);
}

#[test]
fn pending_event_is_flushed_after_the_wait_bound() {
    let mut p = parser(ParseConfig::default());
    assert!(p.push(b"ERROR alone", false, 1_000).is_none());
    assert!(p.flush_due(1_500).is_none(), "not yet");
    let ev = p.flush_due(2_000).expect("waited 1 s").clone();
    assert_eq!(ev.text, "ERROR alone");
    assert!(p.finish().is_none(), "nothing left");
}

#[test]
fn streams_do_not_join_across_stdout_and_stderr() {
    let mut p = parser(ParseConfig::default());
    let a = br#"{"log":"ERROR x\n","stream":"stderr"}"#;
    let b = br#"{"log":"  indented on stdout\n","stream":"stdout"}"#;
    let evs = events(&mut p, &[a, b]);
    assert_eq!(evs.len(), 2);
}

#[test]
fn zero_bounds_are_config_errors() {
    let cfg = ParseConfig {
        max_line_bytes: 0,
        ..ParseConfig::default()
    };
    assert!(matches!(
        Parser::new(&cfg),
        Err(ParseError::Setting {
            field: "max_line_bytes",
            ..
        })
    ));
}

#[test]
fn config_round_trips_through_yaml() {
    let cfg = ParseConfig {
        log_format: Some("<Level> <Content>".into()),
        ..ParseConfig::default()
    };
    let text = yaml_serde::to_string(&cfg).expect("serialise");
    let back: ParseConfig = yaml_serde::from_str(&text).expect("parse");
    assert_eq!(back, cfg);
    let err = yaml_serde::from_str::<ParseConfig>("formatt: plain\n").expect_err("unknown key");
    assert!(err.to_string().contains("unknown field `formatt`"), "{err}");
}
