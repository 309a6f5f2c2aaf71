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
    if a.first().is_some_and(|w| w == "idle_client") {
        idle_client(&a[1..]);
    }
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

/// Lifts the open-file limit to `want` descriptors (soft and hard, which root may raise), or
/// at least the soft limit to the hard one.
pub fn raise_nofile(want: u64) {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to an rlimit for every call.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        let hard = l.rlim_max.max(want);
        let raised = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// Listening ports of an `idle_conns` server: one port gives a client about 28,000
/// connections (the ephemeral ports), four give 100,000.
pub const IDLE_PORTS: usize = 4;

/// The client of the `idle_conns` workloads, in a process of its own (its descriptors are
/// not the server's): `<peer> idle_client ADDR,ADDR,... N` connects N times, round-robin over
/// the addresses, prints `ready`, and holds the connections until its standard input closes.
/// Plain blocking sockets: the client is not what is measured.
pub fn idle_client(a: &[String]) -> ! {
    use std::io::{BufRead, Write};
    let addrs: Vec<std::net::SocketAddr> = a[0].split(',').map(|s| s.parse().unwrap()).collect();
    let n: usize = a[1].parse().unwrap();
    raise_nofile(n as u64 + 1024);
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        match std::net::TcpStream::connect(addrs[i % addrs.len()]) {
            Ok(c) => conns.push(c),
            Err(e) => {
                eprintln!("idle_client: connection {i}: {e}");
                std::process::exit(1);
            }
        }
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().lock().lines().count();
    drop(conns);
    std::process::exit(0);
}

/// Starts the `idle_conns` client for `addrs` (this program, re-run as `idle_client`) and
/// waits until it has made its `n` connections; dropping the child's stdin ends it.
pub fn start_idle_client(addrs: &[std::net::SocketAddr], n: u64) -> std::process::Child {
    use std::io::BufRead;
    let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["idle_client", &list.join(","), &n.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the idle client starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the idle client failed");
    child
}

/// Ends the `idle_conns` client (closing its stdin) and reaps it.
pub fn end_idle_client(mut child: std::process::Child) {
    drop(child.stdin.take());
    let _ = child.wait();
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

/// A `/proc/self/status` field (`"VmRSS:"`, `"VmPTE:"`) in bytes; 0 if it cannot be read.
pub fn status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resident set size of this process in bytes.
pub fn vm_rss() -> u64 {
    status_bytes("VmRSS:")
}

/// The memory the parked-goroutine rows count: resident pages and the page tables that map
/// them (`VmPTE`), which a million stacks or tasks make sizeable.
pub fn mem_now() -> u64 {
    vm_rss() + status_bytes("VmPTE:")
}

/// How long `wake_parked` lets its goroutines sit before it wakes them: long enough for gort
/// to copy their stacks out (parked for about a second), the same for every peer.
pub const WAKE_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Goroutines in the `ring` workload.
pub const RING: usize = 10_000;
/// How long `parked_mem` lets parked goroutines settle before reading RSS (every peer): the
/// steady state of a server holding idle connections, not the moment after the spawn. gort
/// copies out stacks of goroutines parked for about a second, at roughly a million a second
/// on this machine kind, so 3M parked goroutines need several seconds. 10 s unless
/// `GORT_BENCH_SETTLE_MS` says otherwise (`compare --quick` sets 3 s; the Go program reads
/// the same variable).
pub fn settle() -> std::time::Duration {
    let ms = std::env::var("GORT_BENCH_SETTLE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    std::time::Duration::from_millis(ms)
}

/// Defers per call in `defer_list` (a loop of them: the defer list in gort, heap defers in
/// Go); the figure is per defer.
pub const LIST_DEFERS: u64 = 10;

/// splitmix64: the sleepers' durations, the same on every peer (the Go program has a copy).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How long sleeper `i` sleeps: uniform over 1-10 ms in microseconds, from `splitmix64(i)`,
/// so every peer sleeps the same multiset of durations in the same order.
pub fn sleeper_duration(i: u64) -> std::time::Duration {
    std::time::Duration::from_micros(1_000 + splitmix64(i) % 9_001)
}

/// Messages (64-byte round trips) of a `tcp_echo` run, spread over its `n` connections.
pub const ECHO_MSGS: u64 = 100_000;
/// The size of a `tcp_echo` message.
pub const ECHO_SIZE: usize = 64;

/// Goroutines contending in the `mutex` workload.
pub const CONTENDERS: u64 = 1_000;

/// `deep`: levels each goroutine recurses (about 1 KiB of frame each, so 1 MiB in all: four
/// times a default gort window, past Go's first nine stack doublings).
pub const DEEP_LEVELS: u64 = 1024;

/// `deep`: goroutines recursing at once.
pub const DEEP_AT_ONCE: usize = 64;

/// `deep`'s recursion: a `#[gort::func]` frame (checked: it continues on a further stack
/// segment when its stack runs low) holding 1 KiB. Returns the sum 0..=n.
#[gort::func]
pub fn dive(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 128]);
    if n == 0 {
        return pad[0];
    }
    dive(n - 1) + pad[1]
}

/// Skynet's answer for `n` leaves: the sum 0..n.
pub fn skynet_sum(n: u64) -> u64 {
    n * (n - 1) / 2
}

/// The defer / panic workloads, shared by the criterion bench and `gort_peer` (Go's side is
/// in `go/main.go`, with the same shapes).
pub mod defers {
    use std::cell::Cell;
    use std::hint::black_box;
    use std::time::Instant;

    /// The deferred work: one increment.
    #[inline(never)]
    pub fn bump(x: &Cell<u64>) {
        x.set(x.get() + 1);
    }

    /// The baseline: the same call without a defer.
    #[inline(never)]
    pub fn no_defer(x: &Cell<u64>) {
        bump(x);
    }

    /// One open-coded `defer!` (Go 1.14+'s open-coded defer).
    #[gort::func]
    #[inline(never)]
    pub fn open_defer(x: &Cell<u64>) {
        defer!(bump(x));
    }

    /// One `defer!` on the goroutine's defer list (a loop defeats open coding, as in Go, where
    /// it makes a heap defer).
    #[gort::func]
    #[inline(never)]
    pub fn list_defer(x: &Cell<u64>) {
        for _ in 0..black_box(1) {
            defer!(bump(x));
        }
    }

    /// `LIST_DEFERS` `defer!`s on the defer list in one call (the comparison's `defer_list`,
    /// reported per defer: divide the time per call by `LIST_DEFERS`).
    #[gort::func]
    #[inline(never)]
    pub fn list_defers(x: &Cell<u64>) {
        for _ in 0..black_box(super::LIST_DEFERS) {
            defer!(bump(x));
        }
    }

    /// panic + recover in one frame.
    #[gort::func]
    #[inline(never)]
    pub fn panic_recover(x: &Cell<u64>) {
        defer!(move || {
            if gort::recover().is_some() {
                bump(x);
            }
        });
        panic!("boom");
    }

    /// The floor under `panic_recover`: Rust's own `panic!` + `catch_unwind`, no gort frame.
    /// Run it on a plain thread with a silent hook and no runtime started, so no gort code is
    /// on the path.
    #[inline(never)]
    pub fn bare_unwind(x: &Cell<u64>) {
        if std::panic::catch_unwind(|| panic!("boom")).is_err() {
            bump(x);
        }
    }

    /// Counts when dropped: the depth rows' per-frame destructor (Go's rows: a deferred call).
    pub struct Bump<'a>(&'a Cell<u64>);

    impl Drop for Bump<'_> {
        fn drop(&mut self) {
            bump(self.0);
        }
    }

    /// Recurses `depth` frames, then panics; with `drops`, each frame holds a [`Bump`]. The
    /// addition after the call keeps the recursion a chain of real frames (no tail call).
    #[inline(never)]
    pub fn descend(x: &Cell<u64>, depth: u32, drops: bool) -> u64 {
        if depth == 0 {
            panic!("boom");
        }
        if drops {
            let _b = Bump(x);
            descend(x, depth - 1, drops) + black_box(1)
        } else {
            descend(x, depth - 1, drops) + black_box(1)
        }
    }

    /// panic + recover with the panic `depth` frames below the recovering one.
    #[gort::func]
    #[inline(never)]
    pub fn panic_at_depth(x: &Cell<u64>, depth: u32, drops: bool) {
        defer!(move || {
            if gort::recover().is_some() {
                bump(x);
            }
        });
        descend(x, depth, drops);
    }

    /// Rust's own `panic!` + `catch_unwind` with the panic `depth` frames below (the depth
    /// rows' floor; run with no runtime started, as `bare_unwind`).
    #[inline(never)]
    pub fn bare_at_depth(x: &Cell<u64>, depth: u32, drops: bool) {
        let under = std::panic::AssertUnwindSafe(|| descend(x, depth, drops));
        if std::panic::catch_unwind(under).is_err() {
            bump(x);
        }
    }

    /// `panic_depth_N` / `panic_drop_N` (and `unwind_` for Rust's floor): the depth and
    /// whether each frame has a destructor.
    pub fn depth_workload(w: &str) -> Option<(u32, bool)> {
        let w = w
            .strip_prefix("panic_")
            .or_else(|| w.strip_prefix("unwind_"))?;
        let (drops, d) = match w.split_once('_')? {
            ("depth", d) => (false, d),
            ("drop", d) => (true, d),
            _ => return None,
        };
        Some((d.parse().ok()?, drops))
    }

    /// Times `n` calls of `f(x, depth, drops)` as [`time`] does; ns per call.
    pub fn time_depth(f: fn(&Cell<u64>, u32, bool), depth: u32, drops: bool, n: u64) -> f64 {
        let x = Cell::new(0);
        for _ in 0..n.min(1000) {
            f(black_box(&x), depth, drops);
        }
        let t = Instant::now();
        for _ in 0..n {
            f(black_box(&x), black_box(depth), drops);
        }
        let ns = super::ns_per(t, n);
        assert!(x.get() >= n);
        ns
    }

    /// Calls `f` `n` times; ns per call.
    pub fn time(f: fn(&Cell<u64>), n: u64) -> f64 {
        let x = Cell::new(0);
        for _ in 0..n.min(1000) {
            f(black_box(&x));
        }
        let t = Instant::now();
        for _ in 0..n {
            f(black_box(&x));
        }
        let ns = super::ns_per(t, n);
        assert!(x.get() >= n);
        ns
    }
}
