#!/usr/bin/env python3
"""A flood of distinct templates: every line is a new template and a new incident key.

    python3 benches/flood.py 1000000 > target/bench/flood-1000000.log
    /usr/bin/time -f '%M KB' target/release/medic replay target/bench/flood-1000000.log >/dev/null

The first word of a message is never generalised, so a unique letter-only word there makes
a template of its own; "failed" makes every line a rule hit. Peak RSS must level off at the
template and incident caps instead of growing with the line count.
"""
import string
import sys


def word(i: int) -> str:
    letters = string.ascii_lowercase
    out = ""
    for _ in range(6):
        out += letters[i % 26]
        i //= 26
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    out = sys.stdout
    for i in range(n):
        t = f"2026-01-01T00:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}Z"
        out.write(f"{t} ERROR {word(i)} failed to start\n")


if __name__ == "__main__":
    main()
