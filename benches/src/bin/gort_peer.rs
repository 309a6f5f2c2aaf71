//! The gort side of the comparison: `gort_peer <workload> <procs> <n>`.

use std::time::{Duration, Instant};

use gort_benches::{
    args, defers, dive, mem_now, ns_per, report, settle, skynet_sum, sleeper_duration,
    status_bytes, vm_rss, Args, CONTENDERS, DEEP_AT_ONCE, DEEP_LEVELS, ECHO_MSGS, ECHO_SIZE,
    LIST_DEFERS, RING, WAKE_SETTLE,
};

fn done(wg: gort::WaitGroup) {
    wg.done();
}

/// N goroutines that each signal a WaitGroup; ns per goroutine.
fn spawn(a: &Args) -> f64 {
    let wg = gort::WaitGroup::new();
    let t = Instant::now();
    for _ in 0..a.n {
        wg.add(1);
        gort::go!(done(wg.clone()));
    }
    wg.wait();
    ns_per(t, a.n)
}

/// N goroutines, `DEEP_AT_ONCE` at a time, that each recurse `DEEP_LEVELS` frames (1 MiB)
/// and return; ns per goroutine. Go grows a goroutine's stack by copying; gort continues on
/// stack segments.
fn deep(a: &Args) -> f64 {
    let slots = gort::Chan::new(DEEP_AT_ONCE);
    let wg = gort::WaitGroup::new();
    let want = (0..=DEEP_LEVELS).sum::<u64>();
    let t = Instant::now();
    for _ in 0..a.n {
        slots.send(());
        wg.add(1);
        let (slots, wg) = (slots.clone(), wg.clone());
        gort::go!(move || {
            assert_eq!(dive(DEEP_LEVELS), want);
            slots.recv();
            wg.done();
        });
    }
    wg.wait();
    ns_per(t, a.n)
}

/// Two goroutines yielding n times each; ns per yield.
fn yield_(a: &Args) -> f64 {
    let n = a.n;
    let wg = gort::WaitGroup::new();
    let t = Instant::now();
    for _ in 0..2 {
        wg.add(1);
        let wg = wg.clone();
        gort::go!(move || {
            for _ in 0..n {
                gort::yield_now();
            }
            wg.done();
        });
    }
    wg.wait();
    ns_per(t, 2 * n)
}

/// A skynet node: starts `div` children that each send their sum on one unbuffered channel of
/// this node, adds what they send, and sends the total on `out` (the classic benchmark's
/// shape, as Go's program does it).
fn skynet_node(out: gort::Chan<u64>, num: u64, size: u64, div: u64) {
    if size == 1 {
        out.send(num);
        return;
    }
    let per = size / div;
    let rc = gort::Chan::new(0);
    for i in 0..div {
        gort::go!(skynet_node(rc.clone(), num + i * per, per, div));
    }
    let mut sum = 0;
    for _ in 0..div {
        sum += rc.recv().expect("children send before anyone closes");
    }
    out.send(sum);
}

/// Skynet: a 10-ary tree of goroutines with n leaves, sums sent up unbuffered channels; ms.
fn skynet(a: &Args) -> f64 {
    let t = Instant::now();
    let c = gort::Chan::new(0);
    gort::go!(skynet_node(c.clone(), 0, a.n, 10));
    let sum = c.recv().expect("the root sends its sum");
    assert_eq!(sum, skynet_sum(a.n));
    t.elapsed().as_secs_f64() * 1e3
}

/// n goroutines parked at once; VmRSS bytes per goroutine.
fn parked_mem(a: &Args, settled: bool) -> f64 {
    let before = mem_now();
    let (chans, _) = park_n(a.n);
    // Settled: parked goroutines as a long-running server holds them (gort copies out the
    // stacks of goroutines parked for about a second; Go, tokio and may wait as long). Not
    // settled (`parked_mem_now`): right after the last one parked, a burst's peak.
    if settled {
        std::thread::sleep(settle());
    }
    let after = mem_now();
    let st = gort::debug::sched_stats();
    let pte = status_bytes("VmPTE:");
    eprintln!(
        "gort_peer: {} stacks copied out, {} bytes each; page tables {} KiB ({} B/goroutine)",
        st.stacks_copied_out,
        st.copied_out_bytes / st.stacks_copied_out.max(1),
        pte / 1024,
        pte / a.n.max(1)
    );
    assert!(gort::num_goroutine() as u64 > a.n);
    for c in &chans {
        c.close();
    }
    (after.saturating_sub(before)) as f64 / a.n as f64
}

/// n goroutines parked on channels of their own for `WAKE_SETTLE` (gort copies their stacks
/// out meanwhile), then all woken at once: ns per goroutine from the first wake-up to the
/// last goroutine's end (gort: each copies its stack back in first).
fn wake_parked(a: &Args) -> f64 {
    let ended = gort::WaitGroup::new();
    ended.add(i32::try_from(a.n).expect("n fits a WaitGroup"));
    let (chans, _) = park_n_then(a.n, {
        let ended = ended.clone();
        move || ended.done()
    });
    std::thread::sleep(WAKE_SETTLE);
    let out = gort::debug::sched_stats().stacks_copied_out;
    let t = Instant::now();
    for c in &chans {
        c.close();
    }
    ended.wait();
    let ns = ns_per(t, a.n);
    eprintln!("gort_peer: {out} of {} stacks were copied out", a.n);
    ns
}

/// Starts `n` goroutines that each park receiving from a channel of their own; returns the
/// channels and the time until all had started.
fn park_n(n: u64) -> (Vec<gort::Chan<()>>, Duration) {
    park_n_then(n, || {})
}

/// `park_n`, each goroutine calling `then` once woken.
fn park_n_then(
    n: u64,
    then: impl Fn() + Clone + Send + 'static,
) -> (Vec<gort::Chan<()>>, Duration) {
    let t = Instant::now();
    let started = gort::WaitGroup::new();
    let mut chans = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let c = gort::Chan::new(0);
        chans.push(c.clone());
        started.add(1);
        let (s, then) = (started.clone(), then.clone());
        gort::go!(move || {
            s.done();
            c.recv();
            then();
        });
    }
    started.wait();
    (chans, t.elapsed())
}

/// A burst: n goroutines alive at once (each parked on one gate), then all end; after the
/// settle, the RSS still held, in percent of the burst's peak RSS (VmHWM). What a server keeps
/// after a spike: gort's scavenger releases stack windows unused for a whole second.
fn burst_mem(a: &Args) -> f64 {
    let first = burst(a.n);
    let at_end = vm_rss();
    std::thread::sleep(settle());
    let peak = status_bytes("VmHWM:");
    let after = vm_rss();
    let maps = std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count());
    let st = gort::debug::sched_stats();
    // A second burst on the released windows: as fast as the first?
    let second = burst(a.n);
    eprintln!(
        "gort_peer: peak {} MiB, at the end {} MiB, after the settle {} MiB; {maps} maps; \
         {} free windows committed, {} released; bursts {:.0} / {:.0} ns per goroutine",
        peak >> 20,
        at_end >> 20,
        after >> 20,
        st.free_stacks,
        st.released_stacks,
        first,
        second
    );
    after as f64 * 100.0 / peak.max(1) as f64
}

/// n goroutines each wait in `recv_from` on a UDP socket of their own, all with one read
/// deadline 3 s away (long enough for their stacks to be copied out); the mean lateness of
/// their wake-ups past the deadline, in µs. Prints the worst, and RSS before the deadline, at
/// the end and after a settle (issue 22's deadline herd).
fn deadline_herd(a: &Args) -> f64 {
    use gort::net::UdpSocket;
    gort_benches::raise_nofile(a.n + 1024);
    let n = a.n as usize;
    // Kept open until the end, as Go's side keeps its sockets: a close is not the wake-up's
    // cost.
    let socks: Vec<std::sync::Arc<UdpSocket>> = (0..n)
        .map(|_| std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").expect("a socket")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(3);
    let late: gort::Chan<u64> = gort::Chan::new(n);
    for s in &socks {
        let (s, late) = (s.clone(), late.clone());
        gort::go!(move || {
            s.set_read_deadline(Some(deadline)).unwrap();
            let mut buf = [0u8; 64];
            let e = s.recv_from(&mut buf).expect_err("nobody sends");
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
            late.send(deadline.elapsed().as_nanos() as u64);
        });
    }
    std::thread::sleep(
        deadline.saturating_duration_since(Instant::now()) - Duration::from_millis(50),
    );
    let before = vm_rss();
    let hwm_before = status_bytes("VmHWM:");
    let mut v: Vec<u64> = (0..n).map(|_| late.recv().unwrap()).collect();
    let at_end = vm_rss();
    std::thread::sleep(Duration::from_secs(3));
    let after = vm_rss();
    v.sort_unstable();
    let mean = v.iter().sum::<u64>() as f64 / n as f64 / 1e3;
    eprintln!(
        "gort_peer: late mean {:.1} ms, p50 {:.1} ms, max {:.1} ms; RSS before the deadline {} MiB \
         (peak {} MiB), when all woke {} MiB, 3 s later {} MiB, peak {} MiB",
        mean / 1e3,
        v[n / 2] as f64 / 1e6,
        v[n - 1] as f64 / 1e6,
        before >> 20,
        hwm_before >> 20,
        at_end >> 20,
        after >> 20,
        status_bytes("VmHWM:") >> 20
    );
    drop(socks); // here, after the measurement
    mean
}

/// n goroutines alive at once (each parked on one gate), then all end; ns per goroutine.
fn burst(n: u64) -> f64 {
    let t = Instant::now();
    let gate: gort::Chan<()> = gort::Chan::new(0);
    let (parked, ended) = (gort::WaitGroup::new(), gort::WaitGroup::new());
    for _ in 0..n {
        parked.add(1);
        ended.add(1);
        let (gate, parked, ended) = (gate.clone(), parked.clone(), ended.clone());
        gort::go!(move || {
            parked.done();
            gate.recv();
            ended.done();
        });
    }
    parked.wait();
    gate.close();
    ended.wait();
    ns_per(t, n)
}

/// Creating goroutines that park on a channel each, until all have started; ns per goroutine.
fn parked_create(a: &Args) -> f64 {
    let (chans, took) = park_n(a.n);
    for c in &chans {
        c.close();
    }
    took.as_nanos() as f64 / a.n as f64
}

/// Two goroutines over two unbuffered channels; ns per round trip.
fn pingpong(a: &Args) -> f64 {
    let (ping, pong) = (gort::Chan::new(0), gort::Chan::new(0));
    let (pi, po) = (ping.clone(), pong.clone());
    gort::go!(move || {
        for v in &pi {
            po.send(v);
        }
    });
    let t = Instant::now();
    for i in 0..a.n {
        ping.send(i);
        pong.recv();
    }
    let v = ns_per(t, a.n);
    ping.close();
    v
}

/// `pingpong` with futures instead of channels: two goroutines hand a value back and forth
/// through one-value slots, each waiting in `gort::block_on` (the wake-up of `block_on`
/// against a channel's); ns per round trip. gort only (no peer has `block_on` on a stackful
/// thread of its own).
fn pingpong_future(a: &Args) -> f64 {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Waker};

    #[derive(Clone, Default)]
    struct Slot(Arc<Mutex<(Option<u64>, Option<Waker>)>>);
    impl Slot {
        fn put(&self, v: u64) {
            let w = {
                let mut s = self.0.lock().unwrap();
                s.0 = Some(v);
                s.1.take()
            };
            if let Some(w) = w {
                w.wake();
            }
        }
    }
    impl Future for Slot {
        type Output = u64;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
            let mut s = self.0.lock().unwrap();
            match s.0.take() {
                Some(v) => Poll::Ready(v),
                None => {
                    s.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }
    let (ping, pong) = (Slot::default(), Slot::default());
    let (pi, po) = (ping.clone(), pong.clone());
    let n = a.n;
    gort::go!(move || {
        for _ in 0..n {
            let v = gort::block_on(pi.clone());
            po.put(v);
        }
    });
    let t = Instant::now();
    for i in 0..n {
        ping.put(i);
        gort::block_on(pong.clone());
    }
    ns_per(t, n)
}

/// A ring of `RING` goroutines passing a token `n` hops; ns per hop.
fn ring(a: &Args) -> f64 {
    let chans: Vec<gort::Chan<u64>> = (0..RING).map(|_| gort::Chan::new(0)).collect();
    let done = gort::Chan::new(0);
    for i in 0..RING {
        let (inp, out, done) = (
            chans[i].clone(),
            chans[(i + 1) % RING].clone(),
            done.clone(),
        );
        gort::go!(move || {
            for v in &inp {
                if v == 0 {
                    done.send(());
                } else {
                    out.send(v - 1);
                }
            }
        });
    }
    let t = Instant::now();
    chans[0].send(a.n);
    done.recv();
    ns_per(t, a.n)
}

/// `CONTENDERS` goroutines locking one Mutex n times in all; ns per lock + unlock.
fn mutex(a: &Args) -> f64 {
    let m = std::sync::Arc::new(gort::Mutex::new(0u64));
    let wg = gort::WaitGroup::new();
    let per = a.n / CONTENDERS;
    let t = Instant::now();
    for _ in 0..CONTENDERS {
        wg.add(1);
        let (m, wg) = (m.clone(), wg.clone());
        gort::go!(move || {
            for _ in 0..per {
                *m.lock() += 1;
            }
            wg.done();
        });
    }
    wg.wait();
    assert_eq!(*m.lock(), per * CONTENDERS);
    ns_per(t, per * CONTENDERS)
}

/// n goroutines sleeping uniformly 1-10 ms each (`sleeper_duration`); ms until all woke.
fn sleepers(a: &Args) -> f64 {
    let wg = gort::WaitGroup::new();
    let t = Instant::now();
    for i in 0..a.n {
        wg.add(1);
        let wg = wg.clone();
        gort::go!(move || {
            gort::time::sleep(sleeper_duration(i));
            wg.done();
        });
    }
    wg.wait();
    t.elapsed().as_secs_f64() * 1e3
}

/// `gort::blocking` around getpid(2), n times; ns per call (Go: `syscall.Getpid()`, whose
/// system-call wrapper does entersyscall/exitsyscall).
fn blocking(a: &Args) -> f64 {
    let t = Instant::now();
    for _ in 0..a.n {
        // SAFETY: getpid has no preconditions.
        std::hint::black_box(gort::blocking(|| unsafe { libc::getpid() }));
    }
    ns_per(t, a.n)
}

/// TCP echo over loopback: `n` connections, each ping-ponging 64-byte messages with an echo
/// goroutine of the same process, `ECHO_MSGS` in all; ns per message (one round trip).
fn tcp_echo(a: &Args) -> f64 {
    use gort::net::{TcpListener, TcpStream};
    use std::io::{Read, Write};
    let conns = a.n;
    let per = ECHO_MSGS / conns;
    let ln = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    gort::go!(move || {
        for c in ln.incoming() {
            let mut c = c.unwrap();
            c.set_nodelay(true).unwrap();
            gort::go!(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => c.write_all(&buf[..n]).unwrap(),
                    }
                }
            });
        }
    });
    let ready = gort::WaitGroup::new();
    let done = gort::WaitGroup::new();
    let start: gort::Chan<()> = gort::Chan::new(0);
    for _ in 0..conns {
        ready.add(1);
        done.add(1);
        let (ready, done, start) = (ready.clone(), done.clone(), start.clone());
        gort::go!(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            let msg = [7u8; ECHO_SIZE];
            let mut back = [0u8; ECHO_SIZE];
            ready.done();
            start.recv();
            for _ in 0..per {
                s.write_all(&msg).unwrap();
                s.read_exact(&mut back).unwrap();
            }
            done.done();
        });
    }
    ready.wait();
    let t = Instant::now();
    start.close();
    done.wait();
    ns_per(t, per * conns)
}

/// RSS and page tables per idle TCP connection held by a server: one goroutine per connection
/// parked in a read with a 4 KiB buffer, as a chat or push server holds its clients; the
/// client runs in a child process. Read once every goroutine has parked (`settled` false) or
/// after the settle.
fn idle_conns(a: &Args, settled: bool) -> f64 {
    use gort::net::TcpListener;
    use std::io::Read;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    gort_benches::raise_nofile(a.n + 1024);
    let before = mem_now();
    let parked = Arc::new(AtomicU64::new(0));
    let mut addrs = Vec::new();
    for _ in 0..gort_benches::IDLE_PORTS {
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        addrs.push(ln.local_addr().unwrap());
        let parked = parked.clone();
        gort::go!(move || {
            for c in ln.incoming() {
                let Ok(mut c) = c else { return };
                let parked = parked.clone();
                gort::go!(move || {
                    let mut buf = [0u8; 4096];
                    parked.fetch_add(1, Ordering::Relaxed);
                    let _ = c.read(&mut buf); // until the client goes
                });
            }
        });
    }
    let client = gort_benches::start_idle_client(&addrs, a.n);
    while parked.load(Ordering::Relaxed) < a.n {
        gort::time::sleep(Duration::from_millis(1));
    }
    gort::time::sleep(Duration::from_millis(20)); // the last reads reach their park
    if settled {
        std::thread::sleep(settle());
    }
    let after = mem_now();
    gort_benches::end_idle_client(client);
    (after.saturating_sub(before)) as f64 / a.n as f64
}

/// getpid(2) alone, n times: the floor under `blocking`.
fn getpid(a: &Args) -> f64 {
    let t = Instant::now();
    for _ in 0..a.n {
        // SAFETY: getpid has no preconditions.
        std::hint::black_box(unsafe { libc::getpid() });
    }
    ns_per(t, a.n)
}

fn main() {
    let a = args();
    if let Some((depth, drops)) = a
        .workload
        .strip_prefix("unwind_")
        .and_then(|_| defers::depth_workload(&a.workload))
    {
        // Rust's floor at a depth: no runtime, no gort hook (as unwind_floor).
        std::panic::set_hook(Box::new(|_| {}));
        let v = defers::time_depth(defers::bare_at_depth, depth, drops, a.n);
        report(&a, v, "ns");
        return;
    }
    if a.workload == "unwind_floor" {
        // Rust's floor: no runtime, no gort hook.
        std::panic::set_hook(Box::new(|_| {}));
        let v = defers::time(defers::bare_unwind, a.n);
        report(&a, v, "ns");
        return;
    }
    let procs = a.procs;
    // GORT_PEER_COPY_OUT=0: copy-out of parked stacks off, to measure what it changes.
    let copy_out = std::env::var("GORT_PEER_COPY_OUT").map_or(true, |v| v != "0");
    // GORT_PEER_STACK=BYTES: another stack window (docs/stacks.md measures the reach's cost).
    let mut builder = gort::Builder::new();
    if let Some(size) = std::env::var("GORT_PEER_STACK")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        builder = builder.stack_size(size);
    }
    let (value, unit) =
        builder
            .procs(procs)
            .copy_out_parked(copy_out)
            .run(move || match a.workload.as_str() {
                "spawn" => (spawn(&a), "ns"),
                "yield" => (yield_(&a), "ns"),
                "deep" => (deep(&a), "ns"),
                "skynet" => (skynet(&a), "ms"),
                "parked_mem" => (parked_mem(&a, true), "B"),
                "parked_mem_now" => (parked_mem(&a, false), "B"),
                "wake_parked" => (wake_parked(&a), "ns"),
                "idle_conns" => (idle_conns(&a, true), "B"),
                "idle_conns_now" => (idle_conns(&a, false), "B"),
                "parked_create" => (parked_create(&a), "ns"),
                "burst_mem" => (burst_mem(&a), "%"),
                "deadline_herd" => (deadline_herd(&a), "us"),
                // Which guard-page path the stacks take here (1: mprotect, a kernel before
                // 6.13; 0: MADV_GUARD_INSTALL), for the comparison's header.
                "guards" => (
                    f64::from(u8::from(gort::debug::sched_stats().mprotect_guards)),
                    "mprotect",
                ),
                "pingpong" => (pingpong(&a), "ns"),
                "pingpong_future" => (pingpong_future(&a), "ns"),
                "ring" => (ring(&a), "ns"),
                "mutex" => (mutex(&a), "ns"),
                "sleepers" => (sleepers(&a), "ms"),
                "defer_none" => (defers::time(defers::no_defer, a.n), "ns"),
                "defer_open" => (defers::time(defers::open_defer, a.n), "ns"),
                "defer_list" => (
                    defers::time(defers::list_defers, a.n) / LIST_DEFERS as f64,
                    "ns",
                ),
                "panic_recover" => (defers::time(defers::panic_recover, a.n), "ns"),
                "blocking" => (blocking(&a), "ns"),
                "getpid" => (getpid(&a), "ns"),
                "tcp_echo" => (tcp_echo(&a), "ns"),
                w if defers::depth_workload(w).is_some() => {
                    let (depth, drops) = defers::depth_workload(w).expect("checked");
                    (
                        defers::time_depth(defers::panic_at_depth, depth, drops, a.n),
                        "ns",
                    )
                }
                w => {
                    eprintln!("gort_peer: unknown workload {w}");
                    std::process::exit(64)
                }
            });
    report(&args(), value, unit);
}
