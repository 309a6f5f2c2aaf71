#!/usr/bin/env python3
"""HTTP plaintext ("Hello, World!", keep-alive) under wrk: gort::http (hyper on goroutines,
`http_server_gort`, whose "/" is the `http_hello` example's handler) against Go 1.19's net/http
and tokio + the same hyper, side by side in one run, interleaved over the passes; `gort raw` is
the hand-written responder (`http_raw`, plaintext only), for reference.

    python3 benches/scripts/http.py [--reps 3] [--secs 10] [--conns 100] [--path /json]

`--path /json` asks every server for the 1 KiB JSON response instead (built per request and
serialized: serde_json for gort and tokio, encoding/json for Go; benches/src/http_json.rs).
`gort` is `http_server_gort` (gort::http; its "/" is `examples/http_hello.rs`'s handler).

Two setups, as issue 10 asks:
  pinned    the server at P=1 on CPU 1, wrk (one thread) on CPU 0 (taskset);
  unpinned  the server at P=2, wrk with two threads, both free to move.
Prints the median requests/s and p99 latency of each cell and gort's ratios. Installs wrk with
apt-get when it is missing (the machine's package registry is reachable).
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GO = "/usr/lib/go-1.19/bin/go"
PORT = 18080


def sh(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, **kw)


def ensure_wrk():
    if shutil.which("wrk"):
        return
    print("http.py: installing wrk", file=sys.stderr)
    sh(["apt-get", "install", "-y", "wrk"], stdout=subprocess.DEVNULL)


def build():
    env = dict(os.environ)
    env.pop("RUST_BACKTRACE", None)
    sh(["cargo", "build", "--release", "-p", "gort-examples", "--example", "http_hello",
        "--example", "http_raw"], cwd=ROOT, env=env)
    sh(["cargo", "build", "--release", "-p", "gort-benches", "--features", "peers", "--bin", "hyper_hello",
        "--bin", "http_server_gort"], cwd=ROOT, env=env)
    # Where cargo put them: CARGO_TARGET_DIR when it is set, as cargo itself reads it.
    target = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"),
                          "release")
    servers = {
        "gort": lambda addr, p: ([os.path.join(target, "http_server_gort"), addr],
                                 {"GOMAXPROCS": str(p)}),
        "gort raw": lambda addr, p: ([os.path.join(target, "examples", "http_raw"), addr],
                                     {"GOMAXPROCS": str(p)}),
        "tokio+hyper": lambda addr, p: ([os.path.join(target, "hyper_hello"), addr, str(p)], {}),
    }
    if os.path.exists(GO):
        out = os.path.join(target, "go_httpserver")
        genv = dict(env, GO111MODULE="on", GOPROXY="off", GOFLAGS="-mod=mod",
                    GOCACHE=os.path.join(target, "gocache"))
        sh([GO, "build", "-o", out, "./httpserver"], cwd=os.path.join(ROOT, "benches", "go"),
           env=genv)
        servers["go net/http"] = lambda addr, p: ([out, addr], {"GOMAXPROCS": str(p)})
    else:
        print(f"http.py: {GO} not found; Go skipped (apt-get install golang-1.19)",
              file=sys.stderr)
    return servers


def wait_port(port, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}")


def to_ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


PATH = "/"


def run_wrk(setup, secs, conns):
    url = f"http://127.0.0.1:{PORT}{PATH}"
    if setup == "pinned":
        cmd = ["taskset", "-c", "0", "wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", url]
    else:
        cmd = ["wrk", "-t2", f"-c{conns}", f"-d{secs}s", "--latency", url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = to_ms(m.group(1), m.group(2))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return rps, p99, (errors.group(0) if errors else "")


def one(servers, name, setup, secs, conns):
    procs = 1 if setup == "pinned" else 2
    cmd, extra = servers[name](f"127.0.0.1:{PORT}", procs)
    if setup == "pinned":
        cmd = ["taskset", "-c", "1"] + cmd
    env = dict(os.environ, **extra)
    env.pop("RUST_BACKTRACE", None)
    srv = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(PORT)
        run_wrk(setup, 1, conns)  # warm-up: connections, caches, the CPU's clock
        return run_wrk(setup, secs, conns)
    finally:
        srv.kill()
        srv.wait()
        time.sleep(0.3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--only", default="", help="comma-separated servers")
    ap.add_argument("--path", default="/", help="/ (plaintext) or /json")
    a = ap.parse_args()
    global PATH
    PATH = a.path
    ensure_wrk()
    servers = build()
    if a.only:
        servers = {k: v for k, v in servers.items() if k in a.only.split(",")}
    setups = ["pinned", "unpinned"]
    res = {}
    for rep in range(a.reps):
        print(f"http.py: pass {rep + 1}/{a.reps}", file=sys.stderr)
        for setup in setups:
            for name in servers:
                rps, p99, err = one(servers, name, setup, a.secs, a.conns)
                print(f"  {setup:8} {name:12} {rps:10.0f} req/s  p99 {p99:7.3f} ms {err}",
                      file=sys.stderr)
                res.setdefault((setup, name), []).append((rps, p99))
    print(f"\nwrk {a.conns} connections, {a.secs} s, {PATH}, median of {a.reps} "
          f"(`python3 benches/scripts/http.py --reps {a.reps} --secs {a.secs} --path {PATH}`)\n")
    print("| setup | server | req/s | p99 ms | gort req/s ratio |")
    print("|---|---|---|---|---|")
    for setup in setups:
        med = {n: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v))
               for (s, n), v in res.items() if s == setup}
        for name, (rps, p99) in med.items():
            ratio = med["gort"][0] / rps if "gort" in med else float("nan")
            print(f"| {setup} | {name} | {rps:.0f} | {p99:.3f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
