//! A process's CPU time and memory, read from /proc: the same readings for the operator and
//! for the peers it is compared with.

use serde::Serialize;

/// (resident now, peak resident) in bytes, from /proc/PID/status; zeros once it is gone.
pub fn memory(pid: u32) -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (0, 0);
    };
    (
        kib_field(&status, "VmRSS:") * 1024,
        kib_field(&status, "VmHWM:") * 1024,
    )
}

/// User + system CPU time used so far, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / clock_ticks_per_second()
}

/// Where a process's resident memory is, from /proc/PID/smaps: the heap (anonymous mappings
/// the allocator made: `[heap]` and anonymous mmaps, threads' arenas among them), thread
/// stacks, and file-backed pages (the binary's code and read-only data), in bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ResidentBreakdown {
    pub rss: u64,
    pub anonymous: u64,
    pub file_backed: u64,
    pub stacks: u64,
    /// Anonymous mappings of 64 MiB or more in address space: glibc's per-thread malloc
    /// arenas (each reserves 64 MiB and touches what it uses).
    pub arena_mappings: u64,
    pub arena_rss: u64,
}

pub fn resident_breakdown(pid: u32) -> ResidentBreakdown {
    std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .map(|text| parse_smaps(&text))
        .unwrap_or_default()
}

/// Sums /proc/PID/smaps by kind of mapping.
pub fn parse_smaps(text: &str) -> ResidentBreakdown {
    let mut out = ResidentBreakdown::default();
    // The current mapping: (its name, its size in KiB).
    let mut current: Option<(String, u64)> = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // "start-end perms offset dev inode [name]"
            let name = words.nth(4).unwrap_or("").to_owned();
            let size = first
                .split_once('-')
                .and_then(|(a, b)| {
                    Some(u64::from_str_radix(b, 16).ok()? - u64::from_str_radix(a, 16).ok()?)
                })
                .unwrap_or(0)
                / 1024;
            current = Some((name, size));
            continue;
        }
        if first != "Rss:" {
            continue;
        }
        let rss = words
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        let Some((name, size_kib)) = &current else {
            continue;
        };
        out.rss += rss;
        if name.starts_with('/') {
            out.file_backed += rss;
        } else if name.starts_with("[stack") {
            out.stacks += rss;
            out.anonymous += rss;
        } else {
            out.anonymous += rss;
            if *size_kib >= 60 * 1024 && name.is_empty() {
                out.arena_mappings += 1;
                out.arena_rss += rss;
            }
        }
    }
    out
}

fn kib_field(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// glibc malloc's own account of a process's heap: what it holds from the system and what of
/// that is in use by live allocations, over every arena (`malloc_stats()`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MallocStats {
    pub arenas: usize,
    pub system_bytes: u64,
    pub in_use_bytes: u64,
}

/// Asks the process's glibc for [`MallocStats`]: gdb attaches, calls `malloc_stats()` (which
/// prints to the process's own stderr, i.e. `log`) and detaches. `None` without gdb, or when
/// the process isn't glibc's.
pub fn malloc_stats(pid: u32, log: &std::path::Path) -> Option<MallocStats> {
    let before = std::fs::metadata(log).ok()?.len() as usize;
    let out = std::process::Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-nx", "-ex"])
        .arg("call (void) malloc_stats()")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = std::fs::read(log).ok()?;
    parse_malloc_stats(&String::from_utf8_lossy(text.get(before..)?))
}

/// The last `malloc_stats()` report in `text`.
pub fn parse_malloc_stats(text: &str) -> Option<MallocStats> {
    let start = text.rfind("Arena 0:")?;
    let report = &text[start..];
    let value = |line: &str| -> Option<u64> { line.split('=').nth(1)?.trim().parse().ok() };
    let total = report.find("Total (incl. mmap):")?;
    let mut totals = report[total..].lines().skip(1);
    Some(MallocStats {
        arenas: report[..total].matches("Arena ").count(),
        system_bytes: value(totals.next()?)?,
        in_use_bytes: value(totals.next()?)?,
    })
}
