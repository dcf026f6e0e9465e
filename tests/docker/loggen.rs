//! Test log generator, built static and run FROM scratch by the Docker tests.
//!
//! loggen count PREFIX N PER_SEC [STDERR_EVERY]  numbered lines "PREFIX BOOT I", then idles
//! loggen long                                      lines that cross Docker's 16 KiB split
//! loggen rate PER_SEC SECONDS                      a steady rate, then idles
//! loggen flood N                                   N lines as fast as possible, then idles

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn idle() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn paced(per_sec: u64, n: u64, mut line: impl FnMut(u64)) {
    let start = Instant::now();
    for i in 0..n {
        line(i);
        if per_sec > 0 {
            let due = Duration::from_nanos(i * 1_000_000_000 / per_sec);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let num = |i: usize| arg(i).parse::<u64>().unwrap_or(0);
    let out = std::io::stdout();
    let err = std::io::stderr();
    match arg(1) {
        "count" => {
            let boot = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let every = num(5);
            paced(num(4), num(3), |i| {
                if every > 0 && i % every == every - 1 {
                    let _ = writeln!(err.lock(), "{} {boot} {i} stderr", arg(2));
                } else {
                    let _ = writeln!(out.lock(), "{} {boot} {i} stdout", arg(2));
                }
            });
            idle()
        }
        "long" => {
            let mut o = out.lock();
            // 100 KiB of ASCII in one line.
            let _ = writeln!(o, "long-ascii {}", "x".repeat(100 * 1024));
            // Multi-byte characters at every offset around the 16 KiB boundary.
            for shift in 0..4 {
                let mut line = String::from("long-utf8 ");
                while line.len() < 16 * 1024 - 8 + shift {
                    line.push('a');
                }
                while line.len() < 16 * 1024 + 64 {
                    line.push_str("é€😀");
                }
                let _ = writeln!(o, "{line}");
            }
            let _ = writeln!(o, "long-done");
            let _ = o.flush();
            idle()
        }
        "rate" => {
            let mut o = out.lock();
            paced(num(2), num(2) * num(3), |i| {
                let _ = writeln!(o, "rate line {i} level=info msg=\"request served\"");
                let _ = o.flush();
            });
            idle()
        }
        "flood" => {
            let mut o = std::io::BufWriter::new(out.lock());
            for i in 0..num(2) {
                let _ = writeln!(o, "flood line {i} level=info msg=\"request served\"");
            }
            let _ = o.flush();
            idle()
        }
        _ => {
            eprintln!("usage: loggen count|long|rate|flood ...");
            std::process::exit(2)
        }
    }
}
