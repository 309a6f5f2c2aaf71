#!/usr/bin/env python3
"""Binaries against each other, interleaved in one run: `ab.py A B [C ...] [--reps N] JOB...`.

Each JOB is `workload:procs:n` (the arguments of a peer binary, see benches/src/lib.rs); every
other argument is a binary (a peer binary, Go's included, or a wrapper script such as one that
runs gort_peer under no_guard_madvise). The binaries run in turn, `--reps` times each per job,
with RUST_BACKTRACE unset; the script prints each one's median and min-max, and the ratio of
each median to the first binary's (with two binaries: old against new, new/old).
"""
import os
import statistics
import subprocess
import sys


def run(binary, job, env_extra=None):
    """One run of `binary` on `job` (`workload:procs:n`), with RUST_BACKTRACE and GORT_UNWIND
    unset and `env_extra` set; its `value=`."""
    w, p, n = job.split(":")
    env = {k: v for k, v in os.environ.items()
           if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE", "GORT_UNWIND")}
    env.update(env_extra or {})
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
    bins = [a for a in args if ":" not in a]
    jobs = [a for a in args if ":" in a]
    if len(bins) < 2 or not jobs:
        raise SystemExit(__doc__)
    for i, b in enumerate(bins):
        print(f"[{i}] {b}")
    head = f"{'job':<28}" + "".join(f" {f'[{i}] median':>11} {'(min-max)':>19}" for i in range(len(bins)))
    head += "".join(f" {f'[{i}]/[0]':>8}" for i in range(1, len(bins)))
    print(head)
    for job in jobs:
        vals = [[] for _ in bins]
        for _ in range(reps):
            for i, b in enumerate(bins):
                vals[i].append(run(b, job))
        meds = [statistics.median(v) for v in vals]
        line = f"{job:<28}"
        for v, m in zip(vals, meds):
            line += f" {m:>11.1f} {f'({min(v):.1f}-{max(v):.1f})':>19}"
        for m in meds[1:]:
            line += f" {m / meds[0]:>8.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
