#!/usr/bin/env python3
"""panic + recover at depths, four ways in one interleaved run (issue 24's rows):

    unwind_depth.py GORT_PEER GO_PEER [--reps N]

For each row, in turn, `--reps` times: gort with its fast unwinder, gort with libgcc's
(`GORT_UNWIND=libgcc`), Rust's own `panic!` + `catch_unwind` (no runtime: libgcc), and Go 1.19.
Rows: `panic_recover` (the panic in the recovering frame) and the panic 1, 10 and 100 plain
frames below it, then with a `Drop` (Go: a `defer`) in each of those frames. Prints medians
(min-max) in ns per panic, and the ratios to Go and of libgcc to the fast path, as markdown.
RUST_BACKTRACE is unset for every run.
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab import run  # noqa: E402  (one runner for both scripts)

ROWS = [("panic_recover", "unwind_floor", 1_000_000)]
for drops in ("depth", "drop"):
    for d, n in ((1, 1_000_000), (10, 300_000), (100, 50_000)):
        ROWS.append((f"panic_{drops}_{d}", f"unwind_{drops}_{d}", n))


def main():
    args = sys.argv[1:]
    reps = 7
    if "--reps" in args:
        i = args.index("--reps")
        reps = int(args[i + 1])
        del args[i : i + 2]
    if len(args) != 2:
        raise SystemExit(__doc__)
    gort, go = args
    print(f"gort: {gort}\ngo: {go}\nreps: {reps}\n")
    print("| row | gort, fast | gort, libgcc | Rust panic!+catch_unwind | Go 1.19 | fast / Go | libgcc / fast |")
    print("|---|---|---|---|---|---|---|")
    for row, floor, n in ROWS:
        cols = {
            "fast": (gort, f"{row}:1:{n}", {}),
            "libgcc": (gort, f"{row}:1:{n}", {"GORT_UNWIND": "libgcc"}),
            "rust": (gort, f"{floor}:1:{n}", {}),
            "go": (go, f"{row}:1:{n}", {}),
        }
        got = {k: [] for k in cols}
        for _ in range(reps):
            for k, (binary, job, env) in cols.items():
                got[k].append(run(binary, job, env))
        med = {k: statistics.median(v) for k, v in got.items()}
        cell = lambda k: f"{med[k]:,.0f} ({min(got[k]):,.0f}-{max(got[k]):,.0f})"
        print(
            f"| {row} | {cell('fast')} | {cell('libgcc')} | {cell('rust')} | {cell('go')} "
            f"| {med['fast'] / med['go']:.2f}x | {med['libgcc'] / med['fast']:.1f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
