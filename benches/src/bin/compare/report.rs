//! The comparison itself: the job list, the runs, the statistics and the markdown report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GO: &str = "/usr/lib/go-1.19/bin/go";

/// One cell row of the report: a workload at one P and one N.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Job {
    pub workload: &'static str,
    pub procs: usize,
    pub n: u64,
}

const fn job(workload: &'static str, procs: usize, n: u64) -> Job {
    Job { workload, procs, n }
}

/// The full report's jobs. The definitions are in docs/benchmarks.md ("Workloads").
const JOBS: &[Job] = &[
    job("spawn", 1, 10_000),
    job("spawn", 1, 100_000),
    job("spawn", 1, 1_000_000),
    job("spawn", 1, 4_000_000),
    job("spawn", 2, 10_000),
    job("spawn", 2, 100_000),
    job("spawn", 2, 1_000_000),
    job("spawn", 2, 4_000_000),
    job("yield", 1, 1_000_000),
    job("skynet", 1, 10_000),
    job("skynet", 1, 100_000),
    job("skynet", 1, 1_000_000),
    job("skynet", 2, 10_000),
    job("skynet", 2, 100_000),
    job("skynet", 2, 1_000_000),
    job("parked_create", 2, 1_000_000),
    job("deep", 2, 10_000),
    job("parked_mem", 2, 10_000),
    job("parked_mem", 2, 100_000),
    job("parked_mem", 2, 1_000_000),
    job("parked_mem", 2, 4_000_000),
    job("parked_mem_now", 2, 10_000),
    job("parked_mem_now", 2, 100_000),
    job("parked_mem_now", 2, 1_000_000),
    job("parked_mem_now", 2, 4_000_000),
    job("wake_parked", 2, 100_000),
    job("wake_parked", 2, 1_000_000),
    job("pingpong", 1, 1_000_000),
    job("pingpong", 2, 1_000_000),
    job("ring", 1, 1_000_000),
    job("ring", 2, 1_000_000),
    job("mutex", 2, 1_000_000),
    job("mutex_async", 2, 1_000_000),
    job("sleepers", 2, 100_000),
    job("defer_none", 1, 100_000_000),
    job("defer_open", 1, 100_000_000),
    job("defer_list", 1, 10_000_000),
    job("panic_recover", 1, 1_000_000),
    job("unwind_floor", 1, 1_000_000),
    job("blocking", 1, 10_000_000),
    job("tcp_echo", 2, 1),
    job("tcp_echo", 2, 100),
    job("tcp_echo", 2, 1000),
    job("idle_conns_now", 2, 10_000),
    job("idle_conns", 2, 10_000),
];

/// `--quick`: one size per workload (no 4M runs), a 3 s settle, 3 passes.
fn quick(j: &Job) -> bool {
    match j.workload {
        "spawn" => j.n == 1_000_000,
        "skynet" => j.n == 100_000,
        "parked_mem" | "parked_mem_now" | "wake_parked" => j.n == 100_000,
        "tcp_echo" => j.n == 100,
        _ => true,
    }
}

/// The unit of a workload's figure.
pub fn unit(w: &str) -> &'static str {
    match w {
        "skynet" | "sleepers" => "ms",
        "parked_mem" | "parked_mem_now" => "B/goroutine (RSS + page tables)",
        "wake_parked" => "ns/goroutine",
        "idle_conns" | "idle_conns_now" => "B/connection (RSS + page tables)",
        "spawn" | "parked_create" | "deep" => "ns/goroutine",
        "yield" => "ns/yield",
        "pingpong" => "ns/round trip",
        "ring" => "ns/hop",
        "mutex" | "mutex_async" => "ns/lock",
        "defer_list" => "ns/defer",
        "defer_none" | "defer_open" | "panic_recover" | "unwind_floor" | "blocking" => "ns/call",
        "tcp_echo" => "ns/message",
        _ => "",
    }
}

/// Workloads only some peers have: defer and panic exist in gort and Go (tokio and may have
/// no such thing); Rust's unwind floor is measured by the gort peer program alone.
pub fn runs(workload: &str, peer: &str) -> bool {
    match workload {
        "defer_none" | "defer_open" | "defer_list" | "panic_recover" => {
            peer == "gort" || peer == "go"
        }
        // A recursion 1 MiB deep: tokio's tasks have no stacks of their own, and may's
        // coroutines have fixed stacks (64 KiB by default) that it would overflow.
        "deep" => peer == "gort" || peer == "go",
        "unwind_floor" => peer == "gort",
        // A blocking section's hand-off round trip: may has no such thing, and tokio's
        // `block_in_place` panics on a current_thread runtime.
        "blocking" => peer != "may" && peer != "tokio_ct",
        // Network I/O: gort, Go's net and tokio (the peers).
        "tcp_echo" => peer != "may",
        // A server's idle connections: gort, Go's net and tokio (the peers).
        "idle_conns" | "idle_conns_now" => peer != "may",
        // tokio's async Mutex, for reference beside `mutex` (where tokio uses std's).
        "mutex_async" => peer.starts_with("tokio"),
        _ => true,
    }
}

/// Whether `peer` runs job `j`: `runs`, and tokio's current_thread flavour only at P=1.
pub fn runs_job(j: &Job, peer: &str) -> bool {
    runs(j.workload, peer) && (peer != "tokio_ct" || j.procs == 1)
}

/// Rows that measure no gort code (a plain call): shown for reference, outside the ratios
/// and the ratio chart.
pub fn baseline(workload: &str) -> bool {
    workload == "defer_none"
}

/// The peers in column order.
/// `tokio_ct` is tokio's current_thread runtime (P=1 rows only; `tokio` is the multi-thread
/// one): a tokio user at one core might pick either, so both run and the better counts.
pub const PEERS: &[&str] = &["gort", "go", "tokio", "tokio_ct", "may"];

/// Samples of one (job, peer) cell.
#[derive(Default, Clone, Debug)]
pub struct Cell {
    pub samples: Vec<f64>,
    pub failed: usize,
}

/// Median, quartiles, minimum and maximum of a cell.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
    pub count: usize,
}

/// The `p` quantile of sorted `v`, interpolated between neighbours.
fn quantile(v: &[f64], p: f64) -> f64 {
    let x = p * (v.len() - 1) as f64;
    let (i, f) = (x.floor() as usize, x.fract());
    if i + 1 < v.len() {
        v[i] + (v[i + 1] - v[i]) * f
    } else {
        v[i]
    }
}

impl Stats {
    pub fn of(samples: &[f64]) -> Option<Stats> {
        if samples.is_empty() {
            return None;
        }
        let mut v = samples.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        Some(Stats {
            median: quantile(&v, 0.5),
            q1: quantile(&v, 0.25),
            q3: quantile(&v, 0.75),
            min: v[0],
            max: v[v.len() - 1],
            count: v.len(),
        })
    }

    /// Half the interquartile range relative to the median: one outlying run (a page-cache
    /// miss, a neighbour on the VM) does not widen it, as it would a min-max range.
    pub fn spread(&self) -> f64 {
        if self.median == 0.0 {
            return 0.0;
        }
        (self.q3 - self.q1) / 2.0 / self.median
    }

    /// A cell whose middle runs disagree by more than ±10 % around the median: its ratio is
    /// not to be trusted to better than that.
    pub fn noisy(&self) -> bool {
        self.count >= 3 && self.spread() > NOISY
    }
}

/// The spread above which a cell is flagged.
pub const NOISY: f64 = 0.10;

/// Every cell of a run.
pub struct Results {
    pub jobs: Vec<Job>,
    pub cells: BTreeMap<(Job, &'static str), Cell>,
    pub peers: Vec<&'static str>,
    pub passes: usize,
    pub machine: Vec<(String, String)>,
}

impl Results {
    pub fn stats(&self, j: &Job, peer: &str) -> Option<Stats> {
        let peer = *PEERS.iter().find(|p| **p == peer)?;
        Stats::of(&self.cells.get(&(*j, peer))?.samples)
    }

    /// gort's median over the best peer's, and which peer that is.
    pub fn ratio(&self, j: &Job) -> Option<(f64, &'static str)> {
        if baseline(j.workload) {
            return None;
        }
        let g = self.stats(j, "gort")?.median;
        let (best, who) = self
            .peers
            .iter()
            .filter(|p| **p != "gort")
            .filter_map(|p| Some((self.stats(j, p)?.median, *p)))
            .min_by(|a, b| a.0.total_cmp(&b.0))?;
        (best > 0.0).then(|| (g / best, who))
    }

    /// The spread of `ratio`: from gort's fastest run over the best peer's slowest to gort's
    /// slowest over its fastest (every pair of runs lies inside).
    pub fn ratio_range(&self, j: &Job) -> Option<(f64, f64)> {
        let (_, who) = self.ratio(j)?;
        let (g, b) = (self.stats(j, "gort")?, self.stats(j, who)?);
        (b.min > 0.0 && b.max > 0.0).then(|| (g.min / b.max, g.max / b.min))
    }
}

fn peer_bins(dir: &Path, go: Option<PathBuf>) -> Vec<(&'static str, PathBuf)> {
    let mut v = vec![("gort", dir.join("gort_peer"))];
    if let Some(g) = go {
        v.push(("go", g));
    }
    v.push(("tokio", dir.join("tokio_peer")));
    v.push(("tokio_ct", dir.join("tokio_peer")));
    v.push(("may", dir.join("may_peer")));
    v
}

/// `cargo run --bin compare` builds only this binary: build the peer binaries beside it (same
/// profile), so the comparison never runs stale or missing ones.
fn build_peers(dir: &Path) {
    let Some(cargo) = std::env::var_os("CARGO") else {
        eprintln!(
            "compare: not run by cargo; using the peer binaries in {}",
            dir.display()
        );
        return;
    };
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-q", "-p", "gort-benches", "--features", "peers"]);
    for b in ["gort_peer", "tokio_peer", "may_peer"] {
        cmd.args(["--bin", b]);
    }
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    if !cmd.status().map(|s| s.success()).unwrap_or(false) {
        eprintln!("compare: building the peer binaries failed");
        std::process::exit(1);
    }
}

/// Installs Go 1.19 with apt-get when it is missing (as root, where apt-get exists).
fn install_go() {
    if Path::new(GO).exists() || !Path::new("/usr/bin/apt-get").exists() {
        return;
    }
    eprintln!("compare: installing golang-1.19 (apt-get)");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-q", "golang-1.19"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("compare: apt-get install golang-1.19 failed");
    }
}

fn build_go(out: &Path) -> Option<PathBuf> {
    install_go();
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
/// of a million goroutines and more get `BIG_RUN_TIMEOUT` (4M parked goroutines take Go
/// about 15 s to make, plus the settle).
const RUN_TIMEOUT: Duration = Duration::from_secs(20);
const BIG_RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// may's runs: its successful runs all take a few seconds, and past its memory-map limit
/// it hangs (after "memory allocation failed") instead of exiting.
const MAY_TIMEOUT: Duration = Duration::from_secs(15);

fn run_one(peer: &str, bin: &Path, j: &Job, settle_ms: u64) -> Option<f64> {
    let mut cmd = Command::new(bin);
    cmd.args([j.workload, &j.procs.to_string(), &j.n.to_string()]);
    // A fixed environment: a backtrace captured at every panic would be measured instead of
    // the unwind; Go's GC and scheduler knobs and tokio's thread count come from the job.
    for v in [
        "RUST_BACKTRACE",
        "RUST_LIB_BACKTRACE",
        "GOGC",
        "GODEBUG",
        "GOMEMLIMIT",
        "TOKIO_WORKER_THREADS",
        "TOKIO_FLAVOR",
        "GORT_PEER_STACK",
        "GORT_PEER_COPY_OUT",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("GOMAXPROCS", j.procs.to_string())
        .env("GORT_BENCH_SETTLE_MS", settle_ms.to_string());
    if peer == "tokio_ct" {
        cmd.env("TOKIO_FLAVOR", "current_thread");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    let timeout = if peer == "may" {
        MAY_TIMEOUT
    } else if j.n >= 1_000_000 && !j.workload.starts_with("defer") {
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
    out.split_whitespace()
        .find_map(|kv| kv.strip_prefix("value="))
        .and_then(|v| v.parse().ok())
}

fn cmd_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "-".into())
}

/// The version of `name` in the workspace's Cargo.lock.
fn locked_version(name: &str) -> String {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l == format!("name = \"{name}\"") {
            if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = ")) {
                return v.trim_matches('"').to_string();
            }
        }
    }
    "-".into()
}

/// Which guard-page path gort's stacks take on this machine, as `gort_peer guards` reports it
/// (the million-goroutine rows depend on it: docs/stacks.md).
fn guard_path(gort: &Path) -> String {
    let out = Command::new(gort)
        .args(["guards", "1", "1"])
        .env_remove("RUST_BACKTRACE")
        .output();
    let v = out.ok().and_then(|o| {
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("value="))
            .and_then(|v| v.parse::<f64>().ok())
    });
    match v {
        Some(x) if x > 0.5 => "mprotect guards under a map budget (this kernel has no \
                               MADV_GUARD_INSTALL, added in Linux 6.13): every gort row, the \
                               million-goroutine ones included, ran on the old-kernel path"
            .into(),
        Some(_) => "MADV_GUARD_INSTALL (Linux 6.13+): every gort row ran on the new-kernel \
                    path; docs/benchmarks.md has the old-kernel rows"
            .into(),
        None => "-".into(),
    }
}

fn machine(passes: usize, settle_ms: u64, go: bool, guards: String) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "-".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or("-".into(), |kb| format!("{:.1} GiB", kb as f64 / 1048576.0));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let git = cmd_line(
        "git",
        &[
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    vec![
        (
            "date".into(),
            cmd_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        ),
        ("cpu".into(), format!("{model}, {cpus} CPUs available")),
        ("memory".into(), mem),
        ("kernel".into(), format!("Linux {kernel}")),
        ("gort's guard pages".into(), guards),
        ("gort".into(), format!("commit {git}")),
        ("rustc".into(), cmd_line("rustc", &["--version"])),
        (
            "go".into(),
            if go {
                cmd_line(GO, &["version"])
            } else {
                "not installed".into()
            },
        ),
        ("tokio".into(), locked_version("tokio")),
        ("may".into(), locked_version("may")),
        (
            "method".into(),
            format!(
                "{passes} passes (parked_mem at most 3), peers interleaved in rotating order, \
                 one process per run; parked_mem settle {} s; environment: RUST_BACKTRACE, \
                 GOGC, GODEBUG unset, GOMAXPROCS = P",
                settle_ms as f64 / 1000.0
            ),
        ),
    ]
}

struct Opts {
    reps: usize,
    /// `--n N`: every selected job at this N instead of the report's sizes.
    n: Option<u64>,
    only: Option<Vec<String>>,
    quick: bool,
    report: Option<PathBuf>,
    replay: Option<PathBuf>,
}

fn opts() -> Opts {
    let mut o = Opts {
        reps: 5,
        n: None,
        only: None,
        quick: false,
        report: None,
        replay: None,
    };
    let mut reps = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reps" => reps = it.next().and_then(|v| v.parse().ok()),
            "--only" => o.only = it.next().map(|v| v.split(',').map(String::from).collect()),
            "--quick" => o.quick = true,
            "--report" => o.report = it.next().map(PathBuf::from),
            "--replay" => o.replay = it.next().map(PathBuf::from),
            "--n" => match it.next().and_then(|v| parse_n(&v)) {
                Some(n) => o.n = Some(n),
                None => usage(64),
            },
            "--help" | "-h" => usage(0),
            other => {
                eprintln!("compare: unknown argument {other}");
                usage(64);
            }
        }
    }
    o.reps = reps.unwrap_or(if o.quick { 3 } else { 5 }).max(1);
    o
}

/// `1000`, `10k`, `4M`.
fn parse_n(v: &str) -> Option<u64> {
    let (digits, mult) = match v.as_bytes().last()? {
        b'k' | b'K' => (&v[..v.len() - 1], 1_000),
        b'm' | b'M' => (&v[..v.len() - 1], 1_000_000),
        _ => (v, 1),
    };
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(mult)
        .filter(|n| *n > 0)
}

/// Prints the usage (workloads, sizes, passes, the report's folder) and exits with `code`.
fn usage(code: i32) -> ! {
    let mut workloads: Vec<&str> = JOBS.iter().map(|j| j.workload).collect();
    workloads.dedup();
    let text = format!(
        "usage: compare [--reps N] [--only w1,w2] [--n N] [--quick] [--report DIR] \
         [--replay results.csv]\n\n\
         Runs gort, Go 1.19, tokio and may on the same workloads, one process per run, the \
         peers interleaved, and prints the medians, spreads and ratios as a markdown table.\n\n\
         --reps N       passes over every job (default 5; 3 with --quick; parked_mem at most 3)\n\
         --only w1,w2   only these workloads: {}\n\
         --n N          every selected job at this N (1000, 10k, 4M) instead of the report's \
         sizes (P=1 and P=2 as listed)\n\
         --quick        one size per workload, a 3 s settle, 3 passes (a few minutes)\n\
         --report DIR   also write DIR/bench/ (the SVG charts, report.md, results.csv) and the \
         table into DIR/benchmarks.md between its report markers; charts of workloads not run \
         are removed, not left stale\n\
         --replay CSV   rebuild the table and charts from a results.csv instead of running\n\n\
         The full report (`--report docs/`) takes about 40 minutes on 2 cores; the definitions \
         of the workloads are in docs/benchmarks.md (\"Workloads\").",
        workloads.join(", ")
    );
    if code == 0 {
        println!("{text}");
    } else {
        eprintln!("{text}");
    }
    std::process::exit(code);
}

/// Passes for a job: the parked-memory runs hold the machine for the settle time each and
/// their spread is small (a byte count), so they get at most 3.
fn passes_for(j: &Job, reps: usize) -> usize {
    // wake_parked holds each run 2 s for its goroutines to settle.
    if matches!(j.workload, "parked_mem" | "wake_parked" | "idle_conns") {
        reps.min(3)
    } else {
        reps
    }
}

fn run_all(o: &Opts, jobs: &[Job]) -> Results {
    let exe = std::env::current_exe().expect("own path");
    let dir = exe.parent().expect("bin dir").to_path_buf();
    build_peers(&dir);
    let go = build_go(&dir);
    let has_go = go.is_some();
    let bins = peer_bins(&dir, go);
    let settle_ms = if o.quick { 3_000 } else { 10_000 };
    let mut cells: BTreeMap<(Job, &'static str), Cell> = BTreeMap::new();
    let started = Instant::now();
    for rep in 0..o.reps {
        eprintln!(
            "compare: pass {}/{} ({:.0} s so far)",
            rep + 1,
            o.reps,
            started.elapsed().as_secs_f64()
        );
        for j in jobs {
            if rep >= passes_for(j, o.reps) {
                continue;
            }
            // Rotate the peers' order from pass to pass: no peer always runs right after
            // another's 4M-goroutine teardown.
            for k in 0..bins.len() {
                let (name, bin) = &bins[(k + rep) % bins.len()];
                if !runs_job(j, name) {
                    continue;
                }
                let cell = cells.entry((*j, name)).or_default();
                if cell.failed > 0 {
                    // may's failures are deterministic (out of memory maps): once is enough.
                    // Another peer's timeout on a loaded machine may not be; its cell then
                    // shows how many runs it has.
                    continue;
                }
                match run_one(name, bin, j, settle_ms) {
                    Some(v) => cell.samples.push(v),
                    None => cell.failed += 1,
                }
            }
        }
    }
    let peers = bins.iter().map(|(n, _)| *n).collect();
    Results {
        jobs: jobs.to_vec(),
        cells,
        peers,
        passes: o.reps,
        machine: machine(o.reps, settle_ms, has_go, guard_path(&bins[0].1)),
    }
}

/// The raw samples, one line per run: `workload,procs,n,peer,value` (value `FAIL` for a run
/// that failed), after `# key: value` lines describing the machine.
fn write_csv(r: &Results, path: &Path) -> std::io::Result<()> {
    let mut s = String::new();
    for (k, v) in &r.machine {
        let _ = writeln!(s, "# {k}: {v}");
    }
    let _ = writeln!(s, "# passes: {}", r.passes);
    let _ = writeln!(s, "workload,procs,n,peer,value");
    for j in &r.jobs {
        for p in &r.peers {
            if let Some(c) = r.cells.get(&(*j, p)) {
                for v in &c.samples {
                    let _ = writeln!(s, "{},{},{},{},{v}", j.workload, j.procs, j.n, p);
                }
                for _ in 0..c.failed {
                    let _ = writeln!(s, "{},{},{},{},FAIL", j.workload, j.procs, j.n, p);
                }
            }
        }
    }
    std::fs::write(path, s)
}

fn read_csv(path: &Path, only: &dyn Fn(&Job) -> bool) -> Results {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("compare: cannot read {}: {e}", path.display()));
    let mut machine = Vec::new();
    let mut passes = 0;
    let mut cells: BTreeMap<(Job, &'static str), Cell> = BTreeMap::new();
    let mut jobs = Vec::new();
    let mut peers = Vec::new();
    for line in text.lines() {
        if let Some(kv) = line.strip_prefix("# ") {
            if let Some((k, v)) = kv.split_once(": ") {
                if k == "passes" {
                    passes = v.parse().unwrap_or(0);
                } else {
                    machine.push((k.to_string(), v.to_string()));
                }
            }
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 5 || f[0] == "workload" {
            continue;
        }
        // Jobs by their definition here (static names), in this binary's order.
        let Some(j) = JOBS
            .iter()
            .find(|j| j.workload == f[0] && j.procs.to_string() == f[1] && j.n.to_string() == f[2])
        else {
            eprintln!("compare: replay skips {line:?}: not a job of this version");
            continue;
        };
        let Some(p) = PEERS.iter().find(|p| **p == f[3]) else {
            eprintln!("compare: replay skips {line:?}: unknown peer");
            continue;
        };
        if !only(j) {
            continue;
        }
        let cell = cells.entry((*j, p)).or_default();
        match f[4].parse::<f64>() {
            Ok(v) => cell.samples.push(v),
            Err(_) => cell.failed += 1,
        }
        if !jobs.contains(j) {
            jobs.push(*j);
        }
        if !peers.contains(p) {
            peers.push(*p);
        }
    }
    jobs.sort_by_key(|j| JOBS.iter().position(|x| x == j));
    peers.sort_by_key(|p| PEERS.iter().position(|x| x == p));
    Results {
        jobs,
        cells,
        peers,
        passes,
        machine,
    }
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// N as the table and the charts write it: `10k`, `4M`.
pub fn fmt_n(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// The job's short name, as charts label it.
pub fn label(j: &Job) -> String {
    format!("{} P={} N={}", j.workload, j.procs, fmt_n(j.n))
}

/// The markdown table: median and ±spread of every cell, noisy cells flagged, and gort's
/// ratio to the best peer.
fn table(r: &Results) -> String {
    let mut s = String::new();
    let _ = write!(s, "| workload | P | N | unit |");
    for p in &r.peers {
        let _ = write!(s, " {p} |");
    }
    let _ = writeln!(s, " gort / go | gort / best peer |");
    let _ = write!(s, "|---|---|---|---|");
    for _ in &r.peers {
        let _ = write!(s, "---:|");
    }
    let _ = writeln!(s, "---:|---:|");
    for j in &r.jobs {
        let _ = write!(
            s,
            "| {} | {} | {} | {} |",
            j.workload,
            j.procs,
            fmt_n(j.n),
            unit(j.workload)
        );
        for p in &r.peers {
            let cell = r.cells.get(&(*j, p));
            match (cell, r.stats(j, p)) {
                (c, Some(st)) => {
                    let flag = if st.noisy() { " ⚠" } else { "" };
                    // A cell with failed runs shows how many of its runs it has.
                    let runs = match c {
                        Some(c) if c.failed > 0 => {
                            format!(" ({}/{} runs)", c.samples.len(), c.samples.len() + c.failed)
                        }
                        _ => String::new(),
                    };
                    let _ = write!(
                        s,
                        " {} ±{:.0}%{flag}{runs} |",
                        fmt_value(st.median),
                        st.spread() * 100.0
                    );
                }
                (Some(c), None) if c.failed > 0 => {
                    let _ = write!(s, " FAIL |");
                }
                _ => {
                    let _ = write!(s, " - |");
                }
            }
        }
        if baseline(j.workload) {
            let _ = writeln!(s, " baseline | baseline |");
            continue;
        }
        match (r.stats(j, "gort"), r.stats(j, "go")) {
            (Some(g), Some(go)) if go.median > 0.0 => {
                let _ = write!(s, " {:.2}× |", g.median / go.median);
            }
            _ => {
                let _ = write!(s, " - |");
            }
        }
        match (r.ratio(j), r.ratio_range(j)) {
            (Some((x, who)), Some((lo, hi))) => {
                let _ = writeln!(s, " **{x:.2}×** ({who}; {lo:.2}-{hi:.2}) |");
            }
            (Some((x, who)), None) => {
                let _ = writeln!(s, " **{x:.2}×** ({who}) |");
            }
            (None, _) => {
                let _ = writeln!(s, " - |");
            }
        }
    }
    s
}

/// Figures derived from several cells: what a defer adds to a call, and what gort adds to
/// Rust's unwinder.
fn derived(r: &Results) -> Vec<String> {
    let med = |w: &str, peer: &str| -> Option<f64> {
        let j = r.jobs.iter().find(|j| j.workload == w)?;
        Some(r.stats(j, peer)?.median)
    };
    let mut lines = Vec::new();
    for peer in ["gort", "go"] {
        if let (Some(none), Some(open), Some(list)) = (
            med("defer_none", peer),
            med("defer_open", peer),
            med("defer_list", peer),
        ) {
            lines.push(format!(
                "{peer}: an open-coded defer adds {:.2} ns to a call; a defer on the list \
                 (heap defer) costs {list:.2} ns",
                open - none
            ));
        }
    }
    if let (Some(pr), Some(floor)) = (med("panic_recover", "gort"), med("unwind_floor", "gort")) {
        lines.push(format!(
            "gort panic+recover {pr:.0} ns = {:.2}× Rust's own panic!+catch_unwind on libgcc's \
             unwinder ({floor:.0} ns; gort's fast unwinder is under the first)",
            pr / floor
        ));
    }
    lines
}

/// The whole markdown report; `charts` is the folder of the SVGs relative to the markdown.
fn markdown(r: &Results, charts: Option<(&str, &[&str])>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| machine | |\n|---|---|");
    for (k, v) in &r.machine {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(s);
    if let Some((dir, written)) = charts {
        for (name, title) in super::chart::NAMES.iter().zip(super::chart::TITLES) {
            if written.contains(name) {
                let _ = writeln!(s, "![{title}]({dir}/{name})\n");
            }
        }
    }
    let _ = writeln!(
        s,
        "Each cell: the median of the passes, ± half the interquartile range relative to the \
         median; ⚠ marks a cell whose middle runs spread more than ±{:.0}% (the charts' error \
         bars show the whole min-max range). Lower is better everywhere. The last columns are \
         gort's median over Go's, and over the best peer's (named in brackets, with the range \
         from gort's fastest run over that peer's slowest to gort's slowest over its fastest).\n",
        NOISY * 100.0
    );
    s.push_str(&table(r));
    let d = derived(r);
    if !d.is_empty() {
        let _ = writeln!(s);
        for l in d {
            let _ = writeln!(s, "- {l}");
        }
    }
    let failed: Vec<String> = r
        .cells
        .iter()
        .filter(|(_, c)| c.failed > 0 && c.samples.is_empty())
        .map(|((j, p), _)| format!("{p} {}", label(j)))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(
            s,
            "\nFAIL (the run failed or timed out; tried once): {}",
            failed.join(", ")
        );
    }
    s
}

/// Markers in docs/benchmarks.md between which `--report` writes the report.
const BEGIN: &str = "<!-- compare report: begin (generated by `compare --report docs/`) -->";
const END: &str = "<!-- compare report: end -->";

fn write_report(r: &Results, dir: &Path, csv: bool) {
    let charts = dir.join("bench");
    std::fs::create_dir_all(&charts).expect("create the report folder");
    if csv {
        write_csv(r, &charts.join("results.csv")).expect("write results.csv");
    }
    let written = match super::chart::all(r, &charts) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("compare: charts failed: {e}");
            Vec::new()
        }
    };
    // Charts of an earlier run that this one did not draw (a subset run) would be linked as
    // if they were this run's: they go.
    for name in super::chart::NAMES {
        if !written.contains(&name) {
            let _ = std::fs::remove_file(charts.join(name));
        }
    }
    let md = markdown(r, Some(("bench", &written)));
    std::fs::write(charts.join("report.md"), markdown(r, Some((".", &written))))
        .expect("write report.md");
    let doc = dir.join("benchmarks.md");
    if let Ok(text) = std::fs::read_to_string(&doc) {
        if let (Some(b), Some(e)) = (text.find(BEGIN), text.find(END)) {
            let new = format!("{}{BEGIN}\n\n{md}\n{}", &text[..b], &text[e..]);
            std::fs::write(&doc, new).expect("update benchmarks.md");
            eprintln!("compare: report written into {}", doc.display());
            return;
        }
    }
    eprintln!(
        "compare: report in {}; no markers in {}",
        charts.join("report.md").display(),
        doc.display()
    );
}

pub fn main() {
    let o = opts();
    let selected = |j: &Job| {
        o.only
            .as_ref()
            .is_none_or(|w| w.iter().any(|x| x == j.workload))
            && (!o.quick || quick(j))
    };
    let r = match &o.replay {
        Some(csv) => read_csv(csv, &selected),
        None => {
            let mut jobs: Vec<Job> = JOBS.iter().copied().filter(|j| selected(j)).collect();
            if let Some(n) = o.n {
                for j in &mut jobs {
                    j.n = n;
                }
                jobs.dedup();
            }
            run_all(&o, &jobs)
        }
    };
    println!("{}", markdown(&r, None));
    if let Some(dir) = &o.report {
        write_report(&r, dir, o.replay.is_none());
    }
}
