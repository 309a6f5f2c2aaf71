//! may running the comparison workloads: `may_peer <workload> <procs> <n>`.
//! may cannot hold more than ~32.7k live coroutines on this machine (two memory maps per
//! stack against vm.max_map_count = 65530), so workloads that need more fail, as recorded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort_benches::{
    args, mem_now, ns_per, report, settle, skynet_sum, sleeper_duration, Args, CONTENDERS, RING,
    WAKE_SETTLE,
};
use may::sync::{mpsc, SyncFlag};

#[derive(Clone)]
struct Wg(Arc<(AtomicU64, SyncFlag)>);
impl Wg {
    fn new(n: u64) -> Wg {
        Wg(Arc::new((AtomicU64::new(n), SyncFlag::new())))
    }
    fn done(&self) {
        if self.0 .0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0 .1.fire();
        }
    }
    fn wait(&self) {
        self.0 .1.wait();
    }
}

fn spawn(a: &Args) -> f64 {
    let wg = Wg::new(a.n);
    let t = Instant::now();
    for _ in 0..a.n {
        let wg = wg.clone();
        may::go!(move || wg.done());
    }
    wg.wait();
    ns_per(t, a.n)
}

fn yield_(a: &Args) -> f64 {
    let n = a.n;
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            may::go!(move || {
                for _ in 0..n {
                    may::coroutine::yield_now();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    ns_per(t, 2 * n)
}

/// A skynet node: `div` child coroutines send their sums on one channel of this node (may's
/// channels are unbounded: it has no rendezvous channel), the node adds them and sends the
/// total on `out`.
fn skynet_node(out: mpsc::Sender<u64>, num: u64, size: u64, div: u64) {
    if size == 1 {
        out.send(num).unwrap();
        return;
    }
    let per = size / div;
    let (tx, rx) = mpsc::channel();
    for i in 0..div {
        let tx = tx.clone();
        may::go!(move || skynet_node(tx, num + i * per, per, div));
    }
    let mut sum = 0;
    for _ in 0..div {
        sum += rx.recv().unwrap();
    }
    out.send(sum).unwrap();
}

fn skynet(a: &Args) -> f64 {
    let t = Instant::now();
    let n = a.n;
    let (tx, rx) = mpsc::channel();
    may::go!(move || skynet_node(tx, 0, n, 10));
    let sum = rx.recv().unwrap();
    assert_eq!(sum, skynet_sum(n));
    t.elapsed().as_secs_f64() * 1e3
}

fn parked_mem(a: &Args, settled: bool) -> f64 {
    let before = mem_now();
    let (txs, _) = park_n(a.n);
    if settled {
        std::thread::sleep(settle());
    }
    let after = mem_now();
    drop(txs);
    (after.saturating_sub(before)) as f64 / a.n as f64
}

/// As gort_peer's: n coroutines waiting on channels of their own for `WAKE_SETTLE`, then all
/// woken; ns per coroutine from the first wake-up to the last one's end.
fn wake_parked(a: &Args) -> f64 {
    let (ended, started) = (Wg::new(a.n), Wg::new(a.n));
    let mut txs = Vec::with_capacity(a.n as usize);
    for _ in 0..a.n {
        let (tx, rx) = mpsc::channel::<()>();
        txs.push(tx);
        let (s, e) = (started.clone(), ended.clone());
        may::go!(move || {
            s.done();
            let _ = rx.recv();
            e.done();
        });
    }
    started.wait();
    std::thread::sleep(WAKE_SETTLE);
    let t = Instant::now();
    for tx in &txs {
        let _ = tx.send(());
    }
    ended.wait();
    ns_per(t, a.n)
}

/// `n` coroutines each waiting on a channel of its own; the senders and the time until all
/// started.
fn park_n(n: u64) -> (Vec<mpsc::Sender<()>>, Duration) {
    let t = Instant::now();
    let started = Wg::new(n);
    let mut txs = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel::<()>();
        txs.push(tx);
        let s = started.clone();
        may::go!(move || {
            s.done();
            let _ = rx.recv();
        });
    }
    started.wait();
    (txs, t.elapsed())
}

/// Creating coroutines that wait on a channel each, until all started; ns per coroutine.
fn parked_create(a: &Args) -> f64 {
    let (txs, took) = park_n(a.n);
    drop(txs);
    took.as_nanos() as f64 / a.n as f64
}

/// Two coroutines over two channels (may's are unbounded); ns per round trip.
fn pingpong(a: &Args) -> f64 {
    let (ping_tx, ping_rx) = mpsc::channel::<u64>();
    let (pong_tx, pong_rx) = mpsc::channel::<u64>();
    may::go!(move || {
        while let Ok(v) = ping_rx.recv() {
            if pong_tx.send(v).is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    for i in 0..a.n {
        ping_tx.send(i).unwrap();
        pong_rx.recv().unwrap();
    }
    ns_per(t, a.n)
}

/// A ring of `RING` coroutines passing a token `n` hops; ns per hop.
fn ring(a: &Args) -> f64 {
    let mut txs = Vec::with_capacity(RING);
    let mut rxs = Vec::with_capacity(RING);
    for _ in 0..RING {
        let (tx, rx) = mpsc::channel::<u64>();
        txs.push(tx);
        rxs.push(Some(rx));
    }
    let (done_tx, done_rx) = mpsc::channel::<()>();
    for i in 0..RING {
        let inp = rxs[i].take().unwrap();
        let out = txs[(i + 1) % RING].clone();
        let done = done_tx.clone();
        may::go!(move || {
            while let Ok(v) = inp.recv() {
                if v == 0 {
                    let _ = done.send(());
                } else if out.send(v - 1).is_err() {
                    break;
                }
            }
        });
    }
    let t = Instant::now();
    txs[0].send(a.n).unwrap();
    done_rx.recv().unwrap();
    ns_per(t, a.n)
}

/// `CONTENDERS` coroutines locking one may Mutex n times in all; ns per lock + unlock.
fn mutex(a: &Args) -> f64 {
    let m = Arc::new(may::sync::Mutex::new(0u64));
    let per = a.n / CONTENDERS;
    let wg = Wg::new(CONTENDERS);
    let t = Instant::now();
    for _ in 0..CONTENDERS {
        let (m, wg) = (m.clone(), wg.clone());
        may::go!(move || {
            for _ in 0..per {
                *m.lock().unwrap() += 1;
            }
            wg.done();
        });
    }
    wg.wait();
    assert_eq!(*m.lock().unwrap(), per * CONTENDERS);
    ns_per(t, per * CONTENDERS)
}

/// n coroutines sleeping uniformly 1-10 ms each (`sleeper_duration`); ms until all woke.
fn sleepers(a: &Args) -> f64 {
    let wg = Wg::new(a.n);
    let t = Instant::now();
    for i in 0..a.n {
        let wg = wg.clone();
        may::go!(move || {
            may::coroutine::sleep(sleeper_duration(i));
            wg.done();
        });
    }
    wg.wait();
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let a = args();
    may::config().set_workers(a.procs);
    let (value, unit) = may::go!(move || match a.workload.as_str() {
        "spawn" => (spawn(&a), "ns"),
        "yield" => (yield_(&a), "ns"),
        "skynet" => (skynet(&a), "ms"),
        "parked_mem" => (parked_mem(&a, true), "B"),
        "parked_mem_now" => (parked_mem(&a, false), "B"),
        "wake_parked" => (wake_parked(&a), "ns"),
        "parked_create" => (parked_create(&a), "ns"),
        "pingpong" => (pingpong(&a), "ns"),
        "ring" => (ring(&a), "ns"),
        "mutex" => (mutex(&a), "ns"),
        "sleepers" => (sleepers(&a), "ms"),
        w => {
            eprintln!("may_peer: unknown workload {w}");
            std::process::exit(64)
        }
    })
    .join()
    .unwrap();
    report(&args(), value, unit);
    std::process::exit(0);
}
