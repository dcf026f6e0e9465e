use super::LineReader;

fn collect(input: &[u8], max: usize) -> Vec<(Vec<u8>, bool)> {
    let mut r = LineReader::new(input, max);
    let mut out = Vec::new();
    while let Some((l, t)) = r.next_line().expect("in-memory read cannot fail") {
        out.push((l.to_vec(), t));
    }
    out
}

#[test]
fn splits_lines_and_keeps_a_final_line_without_newline() {
    let got = collect(b"a\nbb\r\n\nccc", 100);
    let want: Vec<(Vec<u8>, bool)> = vec![
        (b"a".to_vec(), false),
        (b"bb".to_vec(), false),
        (b"".to_vec(), false),
        (b"ccc".to_vec(), false),
    ];
    assert_eq!(got, want);
}

#[test]
fn long_line_is_cut_flagged_and_the_next_line_survives() {
    let mut input = vec![b'x'; 10 * 1024 * 1024];
    input.extend_from_slice(b"\nnext\n");
    let got = collect(&input, 1024);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].0.len(), 1024);
    assert!(got[0].1, "the 10 MiB line must be flagged truncated");
    assert_eq!(got[1], (b"next".to_vec(), false));
}

/// Hands out at most `step` bytes per read, as a pipe or a socket may.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn lines_across_buffer_refills_and_short_reads_come_out_whole() {
    // Lines of every length up to 700 bytes, so many straddle the 256 KiB buffer's end,
    // and one line longer than the buffer but within the limit.
    let mut input = Vec::new();
    let mut want = Vec::new();
    for i in 0..2_000usize {
        let line: Vec<u8> = (0..i % 700).map(|j| b'a' + ((i + j) % 26) as u8).collect();
        input.extend_from_slice(&line);
        input.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
        want.push((line, false));
    }
    let big = vec![b'z'; 300 * 1024];
    input.extend_from_slice(&big);
    input.push(b'\n');
    want.push((big, false));
    input.extend_from_slice(b"last");
    want.push((b"last".to_vec(), false));
    assert_eq!(collect(&input, 512 * 1024), want);
    for step in [1, 7, 4096] {
        let mut r = LineReader::new(Trickle { data: &input, step }, 512 * 1024);
        let mut got = Vec::new();
        while let Some((l, t)) = r.next_line().expect("in-memory read cannot fail") {
            got.push((l.to_vec(), t));
        }
        assert_eq!(got, want, "reads of {step} bytes");
    }
}

#[test]
fn a_line_longer_than_the_buffer_is_cut_to_the_limit() {
    let mut input = vec![b'y'; 600 * 1024];
    input.extend_from_slice(b"\r\nshort\nz");
    let got = collect(&input, 400 * 1024);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].0, vec![b'y'; 400 * 1024]);
    assert!(got[0].1, "the 600 KiB line must be flagged truncated");
    assert_eq!(got[1], (b"short".to_vec(), false));
    assert_eq!(got[2], (b"z".to_vec(), false));
}

#[test]
fn empty_input_has_no_lines() {
    assert!(collect(b"", 10).is_empty());
}

mod tail {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use crate::event::Stream;
    use crate::source::file::{self, Tail};
    use crate::source::start::file_info;
    use crate::source::{Cursor, Framing, ReadFrom, SourceMsg, Stop};

    struct Running {
        rx: mpsc::Receiver<SourceMsg>,
        rt: tokio::runtime::Runtime,
        stop: Stop,
    }

    impl Running {
        /// The next `n` records as (text, truncated, framing, stream).
        fn take(&mut self, n: usize) -> Vec<(String, bool, Framing, Stream, Option<Cursor>)> {
            let mut out = Vec::new();
            while out.len() < n {
                let msg = self
                    .rt
                    .block_on(async {
                        tokio::time::timeout(Duration::from_secs(5), self.rx.recv()).await
                    })
                    .expect("a record within 5 s")
                    .expect("tail still running");
                if let SourceMsg::Record(r) = msg {
                    out.push((
                        String::from_utf8(r.line).expect("utf-8"),
                        r.truncated,
                        r.framing,
                        r.stream,
                        r.cursor,
                    ));
                }
            }
            out
        }

        fn quiet(&mut self) -> bool {
            self.rt
                .block_on(async {
                    tokio::time::timeout(Duration::from_millis(400), self.rx.recv()).await
                })
                .is_err()
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.stop.stop();
        }
    }

    fn start(path: &Path, start: Option<Cursor>, max: usize, docker_json: bool) -> Running {
        let (tx, rx) = mpsc::channel(64);
        let stop = Stop::default();
        let tail = Tail {
            path: path.to_path_buf(),
            info: file_info(path, None),
            start,
            read_from: ReadFrom::Beginning,
            max_line_bytes: max,
            poll: Duration::from_millis(20),
            docker_json,
            sent: None,
        };
        let s = stop.clone();
        std::thread::spawn(move || file::run(tail, tx, s));
        Running {
            rx,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime"),
            stop,
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open for append");
        f.write_all(text.as_bytes()).expect("append");
    }

    fn texts(v: &[(String, bool, Framing, Stream, Option<Cursor>)]) -> Vec<&str> {
        v.iter().map(|r| r.0.as_str()).collect()
    }

    #[test]
    fn follows_rename_and_create_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        append(&path, "one\ntwo\n");
        let mut t = start(&path, None, 1024, false);
        assert_eq!(texts(&t.take(2)), ["one", "two"]);
        // The writer adds a last line without a newline, then the file is rotated.
        append(&path, "three");
        std::thread::sleep(Duration::from_millis(100));
        std::fs::rename(&path, dir.path().join("app.log.1")).expect("rotate");
        append(&path, "four\n");
        assert_eq!(texts(&t.take(2)), ["three", "four"]);
        assert!(t.quiet(), "nothing read twice");
    }

    #[test]
    fn follows_copytruncate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        append(&path, "a1\na2\na3\n");
        let mut t = start(&path, None, 1024, false);
        assert_eq!(texts(&t.take(3)), ["a1", "a2", "a3"]);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(0)
            .expect("truncate");
        std::thread::sleep(Duration::from_millis(100));
        append(&path, "b1\n");
        assert_eq!(texts(&t.take(1)), ["b1"]);
        assert!(t.quiet());
    }

    #[test]
    fn resumes_at_the_cursor_and_in_the_rotated_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        append(&path, "l1\nl2\nl3\n");
        let mut t = start(&path, None, 1024, false);
        let got = t.take(3);
        let after_l2 = got[1].4;
        drop(t);
        // Same file: continue after l2.
        let mut t = start(&path, after_l2, 1024, false);
        assert_eq!(texts(&t.take(1)), ["l3"]);
        assert!(t.quiet());
        drop(t);
        // Rotated while we were away: finish the old file, then read the new one.
        let old_inode = std::fs::metadata(&path).expect("meta").ino();
        assert!(matches!(after_l2, Some(Cursor::File { inode, .. }) if inode == old_inode));
        std::fs::rename(&path, dir.path().join("app.log.1")).expect("rotate");
        append(&path, "n1\n");
        let mut t = start(&path, after_l2, 1024, false);
        assert_eq!(texts(&t.take(2)), ["l3", "n1"]);
        assert!(t.quiet());
    }

    #[test]
    fn a_reader_behind_by_several_rotations_reads_every_generation_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let rotated = |n: usize| dir.path().join(format!("c-json.log.{n}"));
        append(&path, "g2-a\ng2-b\n");
        let mut t = start(&path, None, 1024, false);
        let cursor = t.take(2)[0].4;
        drop(t);
        // Two rotations while medic is away, as the engine's max-file keeps them.
        std::fs::rename(&path, rotated(1)).expect("rotate");
        append(&path, "g1\n");
        std::fs::rename(rotated(1), rotated(2)).expect("rotate");
        std::fs::rename(&path, rotated(1)).expect("rotate");
        append(&path, "g0\n");
        let mut t = start(&path, cursor, 1024, false);
        assert_eq!(texts(&t.take(3)), ["g2-b", "g1", "g0"]);
        assert!(t.quiet());
    }

    #[test]
    fn cuts_long_lines_and_flags_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.log");
        append(&path, &format!("{}\nshort\n", "x".repeat(200_000)));
        let mut t = start(&path, None, 1000, false);
        let got = t.take(2);
        assert_eq!(got[0].0.len(), 1000);
        assert!(got[0].1);
        assert_eq!(got[1].0, "short");
        assert!(!got[1].1);
    }

    #[test]
    fn decodes_json_file_records_and_joins_partials() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let piece = "y".repeat(16 * 1024);
        append(
            &path,
            &format!(
                concat!(
                    "{{\"log\":\"{}\",\"stream\":\"stderr\",\"time\":\"2024-01-01T00:00:00.000000001Z\"}}\n",
                    "{{\"log\":\"end\\n\",\"stream\":\"stderr\",\"time\":\"2024-01-01T00:00:00.000000002Z\"}}\n",
                    "{{\"log\":\"hello \\u00e9\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:01Z\"}}\n",
                    "not json\n"
                ),
                piece
            ),
        );
        let mut t = start(&path, None, 1 << 20, true);
        let got = t.take(3);
        assert_eq!(got[0].0, format!("{piece}end"));
        assert_eq!((got[0].2, got[0].3), (Framing::Content, Stream::Stderr));
        assert_eq!(got[1].0, "hello é");
        assert_eq!(got[1].3, Stream::Stdout);
        // A line that is not a record goes on whole, for the parser to count.
        assert_eq!((got[2].0.as_str(), got[2].2), ("not json", Framing::Line));
    }
}
