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

#[test]
fn empty_input_has_no_lines() {
    assert!(collect(b"", 10).is_empty());
}
