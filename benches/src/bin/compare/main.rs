//! Runs the same workloads on gort, tokio, may and Go 1.19, one process per run, interleaved
//! over the passes, and reports medians, spread and ratios; `--report DIR` also writes SVG
//! charts and the table into `DIR` (docs/benchmarks.md between its report markers).
//!
//! ```text
//! cargo run --release -p gort-benches --bin compare -- --report docs/   # the full report
//! cargo run --release -p gort-benches --bin compare -- --quick          # a few minutes
//! cargo run --release -p gort-benches --bin compare -- --reps 3 --only spawn,skynet
//! cargo run --release -p gort-benches --bin compare -- --replay docs/bench/results.csv --report docs/
//! ```
//!
//! Without the `peers` feature this binary only re-runs itself through cargo with it (the
//! peers, tokio and may, and the chart library are built only then, so the workspace's
//! `cargo test` does not build them). Go is built from `benches/go` with
//! `/usr/lib/go-1.19/bin/go`, installed with apt-get when missing and possible.
//!
//! Every run gets a fixed environment: `RUST_BACKTRACE`, `RUST_LIB_BACKTRACE`, `GOGC`,
//! `GODEBUG` and `TOKIO_WORKER_THREADS` removed, `GOMAXPROCS` set to the run's P (each peer
//! also sets its P from its arguments).

#[cfg(feature = "peers")]
mod chart;
#[cfg(feature = "peers")]
mod report;

#[cfg(feature = "peers")]
fn main() {
    report::main();
}

/// Without the peers: run this very command again through cargo, with them.
#[cfg(not(feature = "peers"))]
fn main() {
    use std::process::Command;
    let Some(cargo) = std::env::var_os("CARGO") else {
        eprintln!(
            "compare: build it with the peers feature: \
             cargo run --release -p gort-benches --features peers --bin compare"
        );
        std::process::exit(2);
    };
    let exe = std::env::current_exe().expect("own path");
    let release = exe
        .parent()
        .and_then(|d| d.file_name())
        .is_some_and(|n| n == "release");
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    eprintln!("compare: building the peers (tokio, may, the charts) with --features peers");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "run",
        "-q",
        "--manifest-path",
        manifest,
        "--features",
        "peers",
    ]);
    if release {
        cmd.arg("--release");
    }
    cmd.args(["--bin", "compare", "--"]);
    cmd.args(std::env::args_os().skip(1));
    let status = cmd.status().expect("cargo runs");
    std::process::exit(status.code().unwrap_or(1));
}
