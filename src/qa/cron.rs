//! Five-field cron expressions (minute, hour, day of month, month, day of week; UTC) for
//! flow schedules: `*`, numbers, ranges `a-b`, lists `a,b`, and steps `*/n` or `a-b/n`.
//! As in Vixie cron, when both day fields are restricted a day matching either one fires.

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_any: bool,
    dow_any: bool,
}

fn field(text: &str, lo: u32, hi: u32, name: &str) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let any = text == "*";
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{name}: bad step {s:?}"))?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a, name)?, num(b, name)?)
        } else {
            let a = num(range, name)?;
            (a, if part.contains('/') { hi } else { a })
        };
        // Day of week 7 is Sunday too.
        let (a, b) = if name == "day of week" {
            (a % 8, b.min(7))
        } else {
            (a, b)
        };
        if a < lo || b > hi.max(if name == "day of week" { 7 } else { hi }) || a > b {
            return Err(format!("{name}: {part:?} is outside {lo}-{hi}"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << (if name == "day of week" { v % 7 } else { v });
            v += step;
        }
    }
    Ok((bits, any))
}

fn num(s: &str, name: &str) -> Result<u32, String> {
    s.parse()
        .map_err(|_| format!("{name}: {s:?} is not a number"))
}

impl Cron {
    /// Parse `m h dom mon dow`.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() != 5 {
            return Err(format!(
                "{text:?}: expected 5 fields (minute hour day-of-month month day-of-week)"
            ));
        }
        let (minute, _) = field(f[0], 0, 59, "minute")?;
        let (hour, _) = field(f[1], 0, 23, "hour")?;
        let (dom, dom_any) = field(f[2], 1, 31, "day of month")?;
        let (month, _) = field(f[3], 1, 12, "month")?;
        let (dow, dow_any) = field(f[4], 0, 6, "day of week")?;
        Ok(Cron {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_any,
            dow_any,
        })
    }

    fn matches(&self, secs: i64) -> bool {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (minute, hour) = ((rem / 60) % 60, rem / 3600);
        // 1970-01-01 was a Thursday (4).
        let dow = (days + 4).rem_euclid(7);
        let (_, month, dom) = crate::event::civil_from_days(days);
        let bit = |set: u64, v: i64| set & (1 << v) != 0;
        let day = match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (false, true) => bit(self.dom, dom),
            (true, false) => bit(self.dow, dow),
            (false, false) => bit(self.dom, dom) || bit(self.dow, dow),
        };
        bit(self.minute, minute) && bit(self.hour, hour) && bit(self.month, month) && day
    }

    /// The first firing time strictly after `after_ms` (ms since the epoch), searched up to
    /// four years ahead.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let mut t = (after_ms / 60_000 + 1) as i64 * 60;
        let end = t + 4 * 366 * 86_400;
        while t < end {
            if self.matches(t) {
                return Some(t as u64 * 1000);
            }
            t += 60;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-02T01:30:00Z, a Wednesday.
    const T: u64 = 1_796_175_000_000;

    #[test]
    fn next_firing_times() {
        let every_30 = Cron::parse("*/30 * * * *").expect("valid");
        assert_eq!(every_30.next_after(T), Some(T + 30 * 60_000));
        let daily_6 = Cron::parse("0 6 * * *").expect("valid");
        assert_eq!(daily_6.next_after(T), Some(T + (4 * 60 + 30) * 60_000));
        // Mondays at 00:00: 2026-12-07.
        let monday = Cron::parse("0 0 * * 1").expect("valid");
        assert_eq!(monday.next_after(T), Some(T - 90 * 60_000 + 5 * 86_400_000));
        // Sunday as 7.
        assert_eq!(
            Cron::parse("0 0 * * 7").expect("valid").next_after(T),
            Some(T - 90 * 60_000 + 4 * 86_400_000)
        );
        let list = Cron::parse("15,45 1-2 * * *").expect("valid");
        assert_eq!(list.next_after(T), Some(T + 15 * 60_000));
    }

    #[test]
    fn bad_expressions_name_the_field() {
        for (e, want) in [
            ("* * * *", "expected 5 fields"),
            ("61 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("*/0 * * * *", "bad step"),
            ("x * * * *", "not a number"),
        ] {
            let err = Cron::parse(e).expect_err(e);
            assert!(err.contains(want), "{e}: {err}");
        }
    }
}
