//! Log lines a person can follow: UTC timestamp, level, message, on stderr
//! (stdout stays for command output).

use std::time::{SystemTime, UNIX_EPOCH};

/// Where the daemon writes what it does.
#[derive(Debug, Clone, Copy)]
pub struct Log {
    verbose: bool,
}

impl Log {
    /// A log; `verbose` adds the debug lines.
    pub fn new(verbose: bool) -> Log {
        Log { verbose }
    }

    /// Something that changed or that the user should know.
    pub fn info(&self, msg: &str) {
        line("INFO", msg);
    }

    /// Something went wrong; trafficjam carries on.
    pub fn warn(&self, msg: &str) {
        line("WARN", msg);
    }

    /// Detail for `-v`/`DEBUG`.
    pub fn debug(&self, msg: &str) {
        if self.verbose {
            line("DEBUG", msg);
        }
    }
}

fn line(level: &str, msg: &str) {
    eprintln!("{} {level:<5} trafficjam: {msg}", now());
}

/// `2026-11-23T05:14:00.123Z`, without a date library (TZ is ignored on
/// purpose: logs are in UTC; milliseconds, as event → enforced is a
/// matter of them).
fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, millis) = (since.as_secs(), since.subsec_millis());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
