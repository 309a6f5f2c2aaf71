//! Runs the same workloads on gort, tokio, may and (if installed) Go 1.19, one process per
//! run, interleaved over `--reps` passes, and prints medians and ratios.
//!
//! `cargo run --release -p gort-benches --features peers --bin compare [-- --reps N] [--only spawn,yield]`
//!
//! Go is built from `benches/go` with `/usr/lib/go-1.19/bin/go` when that exists
//! (`apt-get install golang-1.19`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GO: &str = "/usr/lib/go-1.19/bin/go";

/// (workload, procs, n, lower is better)
const JOBS: &[(&str, usize, u64)] = &[
    ("spawn", 1, 1_000_000),
    ("spawn", 2, 10_000),
    ("spawn", 2, 100_000),
    ("spawn", 2, 1_000_000),
    ("spawn", 2, 4_000_000),
    ("yield", 1, 1_000_000),
    ("skynet", 1, 1_000_000),
    ("skynet", 2, 1_000_000),
    ("parked_create", 2, 1_000_000),
    ("parked_mem", 2, 100_000),
    ("parked_mem", 2, 1_000_000),
    ("parked_mem", 2, 3_000_000),
    ("pingpong", 1, 1_000_000),
    ("pingpong", 2, 1_000_000),
    ("ring", 1, 1_000_000),
    ("ring", 2, 1_000_000),
    ("mutex", 2, 10_000_000),
    ("sleepers", 2, 100_000),
    ("defer_none", 1, 100_000_000),
    ("defer_open", 1, 100_000_000),
    ("defer_list", 1, 20_000_000),
    ("panic_recover", 1, 1_000_000),
    ("unwind_floor", 1, 1_000_000),
    ("blocking", 1, 10_000_000),
    ("tcp_echo", 2, 1),
    ("tcp_echo", 2, 100),
    ("tcp_echo", 2, 1000),
];

/// Workloads only some peers have: defer and panic exist in gort and Go (tokio and may have
/// no such thing); Rust's unwind floor is measured by the gort peer program alone.
fn runs(workload: &str, peer: &str) -> bool {
    match workload {
        "defer_none" | "defer_open" | "defer_list" | "panic_recover" => {
            peer == "gort" || peer == "go"
        }
        "unwind_floor" => peer == "gort",
        // A blocking section's hand-off round trip: may has no such thing.
        "blocking" => peer != "may",
        // Network I/O: gort, Go's net and tokio (the peers).
        "tcp_echo" => peer != "may",
        _ => true,
    }
}

fn peers(dir: &Path, go: Option<PathBuf>) -> Vec<(&'static str, PathBuf)> {
    let mut v = vec![
        ("gort", dir.join("gort_peer")),
        ("tokio", dir.join("tokio_peer")),
        ("may", dir.join("may_peer")),
    ];
    if let Some(g) = go {
        v.push(("go", g));
    }
    v
}

/// `cargo run --bin compare` builds only this binary: build the peer binaries beside it (same
/// profile), so the comparison never runs stale or missing ones.
fn build_peers(dir: &Path) {
    if !cfg!(feature = "peers") {
        // Building the peers with the feature would rebuild this very binary under it.
        eprintln!(
            "compare: run it with the peers feature: \
             cargo run --release -p gort-benches --features peers --bin compare"
        );
        std::process::exit(2);
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        eprintln!(
            "compare: not run by cargo; using the peer binaries in {}",
            dir.display()
        );
        return;
    };
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "-q",
        "-p",
        "gort-benches",
        "--features",
        "peers",
        "--bins",
    ]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
    if !ok {
        eprintln!("compare: building the peer binaries failed");
        std::process::exit(1);
    }
}

fn build_go(out: &Path) -> Option<PathBuf> {
    if !Path::new(GO).exists() {
        eprintln!("compare: {GO} not found; Go column skipped (apt-get install golang-1.19)");
        return None;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("go");
    let bin = out.join("gobench");
    let ok = Command::new(GO)
        .args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&src)
        .env("GO111MODULE", "on")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", out.join("gocache"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    ok.then_some(bin)
}

/// A run that takes longer than this failed (may hangs once it runs out of memory maps); runs
/// of a million goroutines and more get `BIG_RUN_TIMEOUT` (3M parked goroutines take Go
/// about 10 s to make).
const RUN_TIMEOUT: Duration = Duration::from_secs(20);
const BIG_RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn run_one(bin: &Path, w: &str, procs: usize, n: u64) -> Option<f64> {
    let mut child = Command::new(bin)
        .args([w, &procs.to_string(), &n.to_string()])
        // A backtrace captured at every panic would be measured instead of the unwind.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    let timeout = if n > 1_000_000 {
        BIG_RUN_TIMEOUT
    } else {
        RUN_TIMEOUT
    };
    loop {
        if let Some(status) = child.try_wait().ok()? {
            if !status.success() {
                return None;
            }
            break;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    let s = out;
    s.split_whitespace()
        .find_map(|kv| kv.strip_prefix("value="))
        .and_then(|v| v.parse().ok())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let mut reps = 5;
    let mut only: Option<Vec<String>> = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reps" => reps = it.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            "--only" => only = it.next().map(|v| v.split(',').map(String::from).collect()),
            _ => {}
        }
    }
    let exe = std::env::current_exe().expect("own path");
    let dir = exe.parent().expect("bin dir").to_path_buf();
    build_peers(&dir);
    let go = build_go(&dir);
    let peers = peers(&dir, go);
    let jobs: Vec<_> = JOBS
        .iter()
        .filter(|(w, _, _)| only.as_ref().is_none_or(|o| o.iter().any(|x| x == w)))
        .collect();
    let mut samples: BTreeMap<(usize, &str), Vec<f64>> = BTreeMap::new();
    let mut failed: BTreeMap<(usize, &str), usize> = BTreeMap::new();
    for rep in 0..reps {
        eprintln!("compare: pass {}/{reps}", rep + 1);
        for (j, &&(w, procs, n)) in jobs.iter().enumerate() {
            for (name, bin) in &peers {
                if !runs(w, name) {
                    continue;
                }
                if rep > 0 && failed.contains_key(&(j, name)) {
                    continue; // its failures are deterministic (out of memory maps): once is enough
                }
                match run_one(bin, w, procs, n) {
                    Some(v) => samples.entry((j, name)).or_default().push(v),
                    None => *failed.entry((j, name)).or_default() += 1,
                }
            }
        }
    }
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "machine: {} CPUs; {rustc}; median of {reps} runs each\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let names: Vec<&str> = peers.iter().map(|(n, _)| *n).collect();
    print!("| workload | P | N | unit |");
    for n in &names {
        print!(" {n} |");
    }
    println!(" gort / best peer |");
    print!("|---|---|---|---|");
    for _ in &names {
        print!("---|");
    }
    println!("---|");
    for (j, &&(w, procs, n)) in jobs.iter().enumerate() {
        let unit = match w {
            "skynet" | "sleepers" => "ms",
            "parked_mem" => "B/goroutine",
            _ => "ns",
        };
        print!("| {w} | {procs} | {n} | {unit} |");
        let mut meds = BTreeMap::new();
        for name in &names {
            match samples.get_mut(&(j, name)) {
                Some(v) if !v.is_empty() => {
                    let m = median(v);
                    meds.insert(*name, m);
                    print!(" {m:.1} |");
                }
                _ if !runs(w, name) => print!(" - |"),
                _ => print!(" FAIL |"),
            }
        }
        let best_peer = meds
            .iter()
            .filter(|(k, _)| **k != "gort")
            .map(|(_, v)| *v)
            .fold(f64::INFINITY, f64::min);
        match meds.get("gort") {
            Some(g) if best_peer.is_finite() => println!(" {:.2}x |", g / best_peer),
            _ => println!(" - |"),
        }
    }
    // Derived figures of the defer issue: what a defer adds to a call, and what gort adds to
    // Rust's unwinder.
    let med = |w: &str, peer: &'static str| -> Option<f64> {
        let j = jobs.iter().position(|&&(x, _, _)| x == w)?;
        let mut v = samples.get(&(j, peer))?.clone();
        (!v.is_empty()).then(|| median(&mut v))
    };
    let mut lines = Vec::new();
    for peer in ["gort", "go"] {
        if let (Some(none), Some(open), Some(list)) = (
            med("defer_none", peer),
            med("defer_open", peer),
            med("defer_list", peer),
        ) {
            lines.push(format!(
                "{peer}: open-coded defer adds {:.2} ns to a call; a listed (heap) defer {:.2} ns",
                open - none,
                list - none
            ));
        }
    }
    if let (Some(pr), Some(floor)) = (med("panic_recover", "gort"), med("unwind_floor", "gort")) {
        lines.push(format!(
            "gort panic+recover {pr:.0} ns = {:.2}x Rust's panic!+catch_unwind ({floor:.0} ns)",
            pr / floor
        ));
    }
    if !lines.is_empty() {
        println!();
        for l in lines {
            println!("{l}");
        }
    }
    if !failed.is_empty() {
        println!("\nfailed runs (job, peer): {failed:?}");
    }
}
