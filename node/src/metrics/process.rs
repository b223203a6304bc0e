//! The standard `process_*` metrics (CPU time, memory, file descriptors, start time), read
//! from `/proc/self` at each scrape. Where `/proc` is missing they are left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads this process's figures on each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What `/proc/self` says.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    cpu_seconds: f64,
    start_time_seconds: f64,
    virtual_bytes: f64,
    resident_bytes: f64,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

/// Clock ticks per second in `/proc`: USER_HZ, fixed at 100 in Linux's user-space ABI.
const TICKS: f64 = 100.0;

/// Parses `/proc/self/stat` (fields after the parenthesised name, which may hold spaces) and
/// the memory lines of `/proc/self/status` (in kB).
fn parse(stat: &str, status: &str, boot_time: f64) -> Option<Figures> {
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3 of proc(5), so field N is f[N - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|k| k * 1024.0)
    };
    Some(Figures {
        cpu_seconds: (num(14)? + num(15)?) / TICKS,
        start_time_seconds: boot_time + num(22)? / TICKS,
        virtual_bytes: kb("VmSize:")?,
        resident_bytes: kb("VmRSS:")?,
        open_fds: None,
        max_fds: None,
    })
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn read() -> Option<Figures> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mut f = parse(&stat, &status, boot_time()?)?;
    f.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as f64);
    f.max_fds = max_fds();
    Some(f)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(f) = read() else { return Ok(()) };
        let cpu = ConstCounter::new(f.cpu_seconds);
        cpu.encode(enc.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                Some(f.start_time_seconds),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes",
                Some(f.virtual_bytes),
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                Some(f.resident_bytes),
            ),
            ("process_open_fds", "Open file descriptors", f.open_fds),
            (
                "process_max_fds",
                "Most open file descriptors allowed",
                f.max_fds,
            ),
        ];
        for (name, help, v) in gauges {
            if let Some(v) = v {
                let g = ConstGauge::new(v);
                g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_spaces_in_the_name() {
        // pid (comm) state ppid … utime(14)=250 stime(15)=50 … starttime(22)=1000
        let stat = "42 (cairn node) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 \
                    4096000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let status = "Name:\tcairn-node\nVmSize:\t  4000 kB\nVmRSS:\t   400 kB\n";
        let f = parse(stat, status, 1_700_000_000.0).expect("parses");
        assert_eq!(f.cpu_seconds, 3.0);
        assert_eq!(f.start_time_seconds, 1_700_000_010.0);
        assert_eq!(f.virtual_bytes, 4_096_000.0);
        assert_eq!(f.resident_bytes, 409_600.0);
    }

    #[test]
    fn this_process_reads() {
        let f = read().expect("/proc/self is readable on Linux");
        assert!(f.resident_bytes > 0.0 && f.open_fds.is_some_and(|n| n >= 1.0));
    }
}
