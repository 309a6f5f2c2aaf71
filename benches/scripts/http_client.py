#!/usr/bin/env python3
"""HTTP client comparison (issue 23): G goroutines (tasks) each doing keep-alive GETs of
"Hello, World!" one after another with one shared client, every body read to its end;
gort::http's Client against Go 1.19's http.Client and hyper-util's pooled client on tokio,
side by side in one run, interleaved over the passes.

    python3 benches/scripts/http_client.py [--reps 5] [--goroutines 100] [--requests 2000]

The server is the same for every client: tokio + hyper (`hyper_hello`, the fastest of the
HTTP comparison's servers, so that the client is what is measured), one worker thread.
Two setups:
  pinned    the server on CPU 1, the client at P=1 (one worker thread) on CPU 0 (taskset);
  unpinned  the client at P=2 (two worker threads), both free to move.
Prints the median requests/s of each cell and gort's ratios against each peer.
"""

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import time

# benches/scripts/http.py's helpers (loaded by path: its name is the standard library's).
_spec = importlib.util.spec_from_file_location(
    "http_bench", os.path.join(os.path.dirname(os.path.abspath(__file__)), "http.py"))
_hb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_hb)
ROOT, GO, sh, wait_port = _hb.ROOT, _hb.GO, _hb.sh, _hb.wait_port

PORT = 18081


def build():
    env = dict(os.environ)
    env.pop("RUST_BACKTRACE", None)
    sh(["cargo", "build", "--release", "-p", "gort-benches", "--features", "peers",
        "--bin", "hyper_hello", "--bin", "http_client_gort", "--bin", "http_client_hyper"],
       cwd=ROOT, env=env)
    target = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"),
                          "release")
    clients = {
        "gort": lambda url, g, n, p: ([os.path.join(target, "http_client_gort"), url, str(g),
                                       str(n)], {"GOMAXPROCS": str(p)}),
        "tokio+hyper-util": lambda url, g, n, p: ([os.path.join(target, "http_client_hyper"),
                                                   url, str(g), str(n), str(p)], {}),
    }
    if os.path.exists(GO):
        out = os.path.join(target, "go_httpclient")
        genv = dict(env, GO111MODULE="on", GOPROXY="off", GOFLAGS="-mod=mod",
                    GOCACHE=os.path.join(target, "gocache"))
        sh([GO, "build", "-o", out, "./httpclient"], cwd=os.path.join(ROOT, "benches", "go"),
           env=genv)
        clients["go http.Client"] = lambda url, g, n, p: ([out, url, str(g), str(n)],
                                                          {"GOMAXPROCS": str(p)})
    else:
        print(f"http_client.py: {GO} not found; Go skipped (apt-get install golang-1.19)",
              file=sys.stderr)
    server = [os.path.join(target, "hyper_hello"), f"127.0.0.1:{PORT}", "1"]
    return clients, server


def one(clients, name, setup, g, n):
    procs = 1 if setup == "pinned" else 2
    cmd, extra = clients[name](f"http://127.0.0.1:{PORT}/", g, n, procs)
    if setup == "pinned":
        cmd = ["taskset", "-c", "0"] + cmd
    env = dict(os.environ, **extra)
    env.pop("RUST_BACKTRACE", None)
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--goroutines", type=int, default=100)
    ap.add_argument("--requests", type=int, default=2000, help="per goroutine")
    ap.add_argument("--only", default="", help="comma-separated clients")
    a = ap.parse_args()
    clients, server = build()
    if a.only:
        clients = {k: v for k, v in clients.items() if k in a.only.split(",")}
    setups = ["pinned", "unpinned"]
    res = {}
    for setup in setups:
        cmd = (["taskset", "-c", "1"] if setup == "pinned" else []) + server
        env = dict(os.environ)
        env.pop("RUST_BACKTRACE", None)
        srv = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            wait_port(PORT)
            for rep in range(a.reps):
                for name in clients:
                    rps = one(clients, name, setup, a.goroutines, a.requests)
                    print(f"  pass {rep + 1}/{a.reps} {setup:8} {name:16} {rps:10.0f} req/s",
                          file=sys.stderr)
                    res.setdefault((setup, name), []).append(rps)
        finally:
            srv.kill()
            srv.wait()
            time.sleep(0.3)
    print(f"\n{a.goroutines} goroutines x {a.requests} keep-alive GETs, server tokio+hyper "
          f"(1 thread), median of {a.reps} (`python3 benches/scripts/http_client.py "
          f"--reps {a.reps} --goroutines {a.goroutines} --requests {a.requests}`)\n")
    print("| setup | client | req/s | gort / this |")
    print("|---|---|---|---|")
    for setup in setups:
        med = {n: statistics.median(v) for (s, n), v in res.items() if s == setup}
        for name, rps in med.items():
            ratio = med["gort"] / rps if "gort" in med else float("nan")
            print(f"| {setup} | {name} | {rps:.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
