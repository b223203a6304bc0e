//! What a node process costs, read from `/proc` (Linux): CPU seconds so far and resident
//! memory, for `bench`'s per-node figures.

/// One reading of a process.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Usage {
    /// User plus system CPU seconds of all its threads, so far.
    pub cpu_s: f64,
    /// Resident memory now, MB.
    pub rss_mb: f64,
    /// The most resident memory it ever had, MB.
    pub peak_rss_mb: f64,
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux here).
const TICKS_PER_S: f64 = 100.0;

/// Reads `pid`'s usage; `None` if it is gone or `/proc` says something unexpected.
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: fields are counted after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> Option<f64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Usage {
        cpu_s: ticks / TICKS_PER_S,
        rss_mb: kb("VmRSS:")? / 1024.0,
        peak_rss_mb: kb("VmHWM:")? / 1024.0,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let u = super::usage(std::process::id()).expect("own usage");
        assert!(u.rss_mb > 0.0 && u.peak_rss_mb >= u.rss_mb);
        assert!(u.cpu_s >= 0.0);
        assert!(super::usage(u32::MAX).is_none());
    }
}
