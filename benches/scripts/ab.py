#!/usr/bin/env python3
"""Old binary against new binary, interleaved in one run: `ab.py OLD NEW [--reps N] JOB...`.

Each JOB is `workload:procs:n` (the arguments of a peer binary, see benches/src/lib.rs). The
two binaries run alternately, `--reps` times each per job, with RUST_BACKTRACE unset; the
script prints each side's median and min-max, and new/old of the medians.
"""
import os
import statistics
import subprocess
import sys


def run(binary, job):
    w, p, n = job.split(":")
    env = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}
    out = subprocess.run([binary, w, p, n], capture_output=True, text=True, env=env, timeout=600)
    for tok in out.stdout.split():
        if tok.startswith("value="):
            return float(tok[6:])
    raise SystemExit(f"{binary} {job}: no result\n{out.stdout}\n{out.stderr}")


def main():
    args = sys.argv[1:]
    reps = 7
    if "--reps" in args:
        i = args.index("--reps")
        reps = int(args[i + 1])
        del args[i : i + 2]
    old, new, jobs = args[0], args[1], args[2:]
    print(f"{'job':<28} {'old median':>11} {'(min-max)':>19} {'new median':>11} {'(min-max)':>19} {'new/old':>8}")
    for job in jobs:
        a, b = [], []
        for _ in range(reps):
            a.append(run(old, job))
            b.append(run(new, job))
        ma, mb = statistics.median(a), statistics.median(b)
        print(
            f"{job:<28} {ma:>11.1f} {f'({min(a):.1f}-{max(a):.1f})':>19} {mb:>11.1f} "
            f"{f'({min(b):.1f}-{max(b):.1f})':>19} {mb / ma:>8.3f}"
        )


if __name__ == "__main__":
    main()
