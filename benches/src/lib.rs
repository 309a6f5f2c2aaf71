//! Shared pieces of the gort benchmarks: the result line every peer program prints, VmRSS,
//! and argument parsing.
//!
//! Every peer binary (`gort_peer`, `tokio_peer`, `may_peer`, and the Go program in `go/`) is
//! called as `<peer> <workload> <procs> <n>` and prints one line
//! `workload=<w> procs=<p> n=<n> value=<v> unit=<u>`, which `compare` collects.

use std::time::Instant;

/// Parsed command line of a peer binary.
pub struct Args {
    /// Workload name.
    pub workload: String,
    /// GOMAXPROCS / worker threads.
    pub procs: usize,
    /// Problem size.
    pub n: u64,
}

/// Parses `<workload> <procs> <n>`.
pub fn args() -> Args {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 3 {
        eprintln!("usage: <peer> <workload> <procs> <n>");
        std::process::exit(64);
    }
    Args {
        workload: a[0].clone(),
        procs: a[1].parse().expect("procs is a number"),
        n: a[2].parse().expect("n is a number"),
    }
}

/// Prints the result line.
pub fn report(a: &Args, value: f64, unit: &str) {
    println!(
        "workload={} procs={} n={} value={:.3} unit={}",
        a.workload, a.procs, a.n, value, unit
    );
}

/// Nanoseconds elapsed since `t` divided by `n`.
pub fn ns_per(t: Instant, n: u64) -> f64 {
    t.elapsed().as_nanos() as f64 / n as f64
}

/// Resident set size of this process in bytes (from /proc/self/status).
pub fn vm_rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Skynet's answer for `n` leaves: the sum 0..n.
pub fn skynet_sum(n: u64) -> u64 {
    n * (n - 1) / 2
}
