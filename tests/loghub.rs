//! Template-mining accuracy on the eight Loghub-2k datasets, scored by the shared evaluator
//! with the acceptance thresholds. A regression in masking or clustering fails here.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn loghub_grouping_and_parsing_accuracy_meet_the_bar() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let eval = root.join("../shared/tools/loghub_eval.py");
    assert!(
        eval.exists(),
        "the shared evaluator is missing at {}",
        eval.display()
    );
    let out = Command::new("python3")
        .arg(&eval)
        .args(["--min-ga", "0.95", "--min-pa", "0.72", "--"])
        .arg(env!("CARGO_BIN_EXE_medic"))
        .args(["templates", "--log-format", "{format}", "{log}"])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("average over 8 datasets"), "{text}");
}
