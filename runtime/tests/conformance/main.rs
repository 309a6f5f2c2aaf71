//! Go conformance: each case of `go/` (a Go program with what Go 1.19 printed) ported to gort
//! in `cases.rs`, run as its own process and compared with Go's output.
//!
//! This is a plain binary (`harness = false`): with no arguments it is the driver, which runs
//! itself once per case with `GORT_CONFORMANCE_CASE=<name>` and compares stdout byte for byte,
//! stderr after `normalize` (the rules of `go/../tools/normalize.py`, restated below) and the
//! exit status. `cargo test --test conformance -- 035` runs the cases whose names contain
//! `035`.

mod cases;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A ported case: the folder name under `go/`, the port, and the stdout lines where gort
/// prints something else than Go, with the reason (see `cases.rs`).
pub struct Case {
    pub name: &'static str,
    pub main: fn(),
    pub stdout_differs: &'static [(&'static str, &'static str)],
}

fn go_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/go")
}

/// Go's crash report reduced to its deterministic lines: the program's own stderr before the
/// first `panic: ` / `fatal error: ` line verbatim; after it only the panic chain, `fatal
/// error:` lines and goroutine headers (ids other than 1 become `N`, and `) 0x...` heap
/// addresses in panic lines become `) 0xADDR`).
fn normalize(text: &str) -> String {
    let mut out = String::new();
    let mut crashed = false;
    let trailing_newline = text.ends_with('\n');
    let mut lines: Vec<&str> = text.split('\n').collect();
    if trailing_newline {
        lines.pop();
    }
    for ln in lines {
        if !crashed && (ln.starts_with("panic: ") || ln.starts_with("fatal error: ")) {
            crashed = true;
        }
        if !crashed {
            out.push_str(ln);
            out.push('\n');
            continue;
        }
        let header = ln.starts_with("goroutine ")
            && ln.ends_with("]:")
            && ln["goroutine ".len()..]
                .split_once(" [")
                .is_some_and(|(id, _)| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
        if header {
            let (id, rest) = ln["goroutine ".len()..].split_once(" [").expect("checked");
            let id = if id == "1" { "1" } else { "N" };
            out.push_str(&format!("goroutine {id} [{rest}\n"));
        } else if ln.starts_with("panic: ")
            || ln.starts_with("\tpanic: ")
            || ln.starts_with("fatal error: ")
        {
            out.push_str(&mask_addr(ln));
            out.push('\n');
        }
    }
    if !crashed && !trailing_newline && out.ends_with('\n') {
        out.pop();
    }
    out
}

fn mask_addr(ln: &str) -> String {
    match ln.find(") 0x") {
        Some(i) => {
            let start = i + ") 0x".len();
            let end = ln[start..]
                .find(|c: char| !c.is_ascii_hexdigit())
                .map_or(ln.len(), |e| start + e);
            format!("{}0xADDR{}", &ln[..i + 2], &ln[end..])
        }
        None => ln.to_string(),
    }
}

fn run_case(case: &Case) -> Result<(), String> {
    let dir = go_dir().join(case.name);
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}/{f}: {e}", dir.display()))
    };
    let mut want_stdout = read("expected.stdout")?;
    for (go, gort) in case.stdout_differs {
        if !want_stdout.contains(go) {
            return Err(format!("stale difference: Go's stdout has no line {go:?}"));
        }
        want_stdout = want_stdout.replace(go, gort);
    }
    let want_stderr = read("expected.stderr")?;
    let want_exit: i32 = read("expected.exit")?
        .trim()
        .parse()
        .map_err(|e| format!("expected.exit: {e}"))?;
    let out = Command::new(std::env::current_exe().expect("own path"))
        .env("GORT_CONFORMANCE_CASE", case.name)
        .env_remove("RUST_BACKTRACE")
        .env_remove("GOMAXPROCS")
        .output()
        .map_err(|e| format!("spawn: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let got_stderr = normalize(&stderr);
    let mut problems = Vec::new();
    if stdout != want_stdout {
        problems.push(format!(
            "stdout differs\n--- want\n{want_stdout}--- got\n{stdout}---"
        ));
    }
    if got_stderr != want_stderr {
        problems.push(format!(
            "stderr differs (normalised)\n--- want\n{want_stderr}--- got\n{got_stderr}--- raw\n{stderr}---"
        ));
    }
    if out.status.code() != Some(want_exit) {
        problems.push(format!("exit status {:?}, want {want_exit}", out.status));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn main() {
    let all = cases::all();
    if let Ok(name) = std::env::var("GORT_CONFORMANCE_CASE") {
        let case = all
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name}"));
        // As `#[gort::main]` does: the case's main is goroutine 1 of a process runtime.
        gort::__private::main(None, None, case.main);
        return;
    }
    normalize_self_check();
    // Every ported case has its Go folder, and every Go folder in range is ported.
    let mut on_disk: Vec<String> = std::fs::read_dir(go_dir())
        .expect("go/ folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut ported: Vec<String> = all.iter().map(|c| c.name.to_string()).collect();
    ported.sort();
    assert_eq!(
        on_disk, ported,
        "every case in go/ is ported, and only those"
    );

    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut failed = 0;
    let mut ran = 0;
    for case in &all {
        if !filter.is_empty() && !filter.iter().any(|f| case.name.contains(f.as_str())) {
            continue;
        }
        ran += 1;
        match run_case(case) {
            Ok(()) => println!("conformance {} ... ok", case.name),
            Err(e) => {
                failed += 1;
                println!("conformance {} ... FAILED\n{e}\n", case.name);
            }
        }
    }
    println!("\nconformance: {} passed; {failed} failed", ran - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The normaliser keeps what Go's keeps (checked before any case runs).
fn normalize_self_check() {
    let raw = "deferred\npanic: boom [recovered]\n\tpanic: x\n\ngoroutine 7 [running]:\n\tpanicked at a.rs:1:1\n";
    assert_eq!(
        normalize(raw),
        "deferred\npanic: boom [recovered]\n\tpanic: x\ngoroutine N [running]:\n"
    );
}
