//! Server-side cost from /proc: CPU time and memory of process trees.
//!
//! CPU of a tree = Σ over each given PID and all its live descendants of
//! utime + stime + cutime + cstime (/proc/PID/stat fields 14–17). A worker that exits during
//! the run (Apache prefork recycling a child) is accounted for by its parent's cutime/cstime
//! once reaped, so a before/after difference counts every process that worked in between,
//! born or dead. Pass the server's parent PID (Apache: the master; Tessera: its PID); extra
//! PIDs (Redis, php-fpm) may be listed too and are reported separately.

use std::collections::HashMap;

/// One process as /proc/PID/stat describes it.
struct Proc {
    ppid: u32,
    ticks: u64,
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux unless changed).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

fn read_stat(pid: u32) -> Option<Proc> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may contain spaces or parentheses.
    let after = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // `f[0]` is field 3 (state), so field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Proc {
        ppid: u32::try_from(num(4)?).ok()?,
        ticks: num(14)? + num(15)? + num(16)? + num(17)?,
    })
}

fn all_processes() -> HashMap<u32, Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, read_stat(pid)?)))
        .collect()
}

/// `root` and every live descendant.
pub fn tree(root: u32) -> Vec<u32> {
    tree_in(&all_processes(), root)
}

fn tree_in(procs: &HashMap<u32, Proc>, root: u32) -> Vec<u32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            procs
                .iter()
                .filter(|(pid, p)| p.ppid == parent && **pid != parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    out
}

/// CPU ticks consumed so far by each root's tree, in the order given.
pub fn cpu_ticks(roots: &[u32]) -> Vec<u64> {
    let procs = all_processes();
    roots
        .iter()
        .map(|&r| {
            tree_in(&procs, r)
                .iter()
                .filter_map(|pid| procs.get(pid))
                .map(|p| p.ticks)
                .sum()
        })
        .collect()
}

/// A `kB` field of /proc/PID/status (`VmHWM`, `VmRSS`), in kB.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kb_field(&text, field)
}

fn kb_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Σ of a status field over each root's tree (kB). For multi-process servers this
/// over-counts pages the processes share; see `pss_kb`.
pub fn tree_status_kb(roots: &[u32], field: &str) -> u64 {
    roots
        .iter()
        .flat_map(|&r| tree(r))
        .filter_map(|pid| status_kb(pid, field))
        .sum()
}

/// Σ Pss (shared pages divided among their users) over the trees, in kB; `None` when
/// /proc/PID/smaps_rollup is unreadable (another user's processes, without root).
pub fn pss_kb(roots: &[u32]) -> Option<u64> {
    let mut total = 0;
    for pid in roots.iter().flat_map(|&r| tree(r)) {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        total += kb_field(&text, "Pss")?;
    }
    Some(total)
}

/// Parses `123,456` into PIDs, checking each exists.
pub fn parse_pids(s: &str) -> Result<Vec<u32>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let pid: u32 = p.trim().parse().map_err(|_| format!("bad PID {p:?}"))?;
            if read_stat(pid).is_none() {
                return Err(format!("no process {pid}"));
            }
            Ok(pid)
        })
        .collect()
}
