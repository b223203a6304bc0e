//! Printing: JSON or text for people, and a reader that went away (`cairn events | head`) ends
//! the program quietly instead of a panic.

use std::io::Write;

use serde::Serialize;

/// Writes a line to stdout; a closed pipe ends the program with success (whoever read it had
/// enough).
pub fn line(s: &str) {
    raw(format!("{s}\n").as_bytes());
}

/// Writes bytes to stdout, flushed; the error is the caller's to judge.
pub fn try_raw(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush())
}

/// Writes bytes to stdout as they are (a completion script, a manual page), like [`line`].
pub fn raw(bytes: &[u8]) {
    if let Err(e) = try_raw(bytes) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(i32::from(super::fail::LOCAL));
    }
}

/// Prints `v` as JSON, or `human(v)` for people.
pub fn print<T: Serialize>(json: bool, v: &T, human: impl FnOnce(&T) -> String) {
    if json {
        line(&serde_json::to_string_pretty(v).unwrap_or_default());
    } else {
        line(&human(v));
    }
}

/// The first 16 characters (of a hash or a key).
pub fn short(s: &str) -> &str {
    &s[..s.len().min(16)]
}

/// Milliseconds since the Unix epoch as a UTC time for people, e.g. `2026-11-30 07:45:12.345 UTC`.
pub fn time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}.{:03} UTC",
        ms % 1000
    )
}

/// `s` as one shell word: unchanged when it is plain, else in single quotes.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._/:=@%+,".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(time(1_700_000_000_123), "2023-11-14 22:13:20.123 UTC");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00.000 UTC");
    }

    #[test]
    fn shell_words_survive_pasting() {
        assert_eq!(shell_quote("plain-key"), "plain-key");
        assert_eq!(shell_quote("my key"), "'my key'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
