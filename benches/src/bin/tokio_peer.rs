//! tokio running the comparison workloads: `tokio_peer <workload> <procs> <n>`.
//! A Go-style WaitGroup is an atomic counter plus a `Notify` fired by the last `done`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort_benches::{
    args, mem_now, ns_per, report, settle, skynet_sum, sleeper_duration, Args, CONTENDERS,
    ECHO_MSGS, ECHO_SIZE, RING, WAKE_SETTLE,
};
use tokio::sync::{mpsc, oneshot, Notify};

#[derive(Clone)]
struct Wg(Arc<(AtomicU64, Notify)>);
impl Wg {
    fn new(n: u64) -> Wg {
        Wg(Arc::new((AtomicU64::new(n), Notify::new())))
    }
    fn done(&self) {
        if self.0 .0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0 .1.notify_one();
        }
    }
    async fn wait(&self) {
        while self.0 .0.load(Ordering::Acquire) != 0 {
            self.0 .1.notified().await;
        }
    }
}

async fn spawn(a: &Args) -> f64 {
    let wg = Wg::new(a.n);
    let t = Instant::now();
    for _ in 0..a.n {
        let wg = wg.clone();
        tokio::spawn(async move { wg.done() });
    }
    wg.wait().await;
    ns_per(t, a.n)
}

async fn yield_(a: &Args) -> f64 {
    let n = a.n;
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            tokio::spawn(async move {
                for _ in 0..n {
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for h in hs {
        h.await.unwrap();
    }
    ns_per(t, 2 * n)
}

/// A skynet node: `div` child tasks send their sums on one channel of this node (tokio has
/// no rendezvous channel: `mpsc::channel(1)`, the smallest bound, is the closest to Go's
/// unbuffered one), the node adds them and sends the total on `out`.
fn skynet_node(
    out: mpsc::Sender<u64>,
    num: u64,
    size: u64,
    div: u64,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if size == 1 {
            out.send(num).await.unwrap();
            return;
        }
        let per = size / div;
        let (tx, mut rx) = mpsc::channel(1);
        for i in 0..div {
            tokio::spawn(skynet_node(tx.clone(), num + i * per, per, div));
        }
        let mut sum = 0;
        for _ in 0..div {
            sum += rx.recv().await.unwrap();
        }
        out.send(sum).await.unwrap();
    })
}

async fn skynet(a: &Args) -> f64 {
    let t = Instant::now();
    let (tx, mut rx) = mpsc::channel(1);
    tokio::spawn(skynet_node(tx, 0, a.n, 10));
    let sum = rx.recv().await.unwrap();
    assert_eq!(sum, skynet_sum(a.n));
    t.elapsed().as_secs_f64() * 1e3
}

async fn parked_mem(a: &Args, settled: bool) -> f64 {
    let before = mem_now();
    let (txs, _) = park_n(a.n).await;
    if settled {
        tokio::time::sleep(settle()).await;
    }
    let after = mem_now();
    drop(txs);
    (after.saturating_sub(before)) as f64 / a.n as f64
}

/// As gort_peer's: n tasks waiting on oneshots of their own for `WAKE_SETTLE`, then all woken;
/// ns per task from the first wake-up to the last task's end.
async fn wake_parked(a: &Args) -> f64 {
    let ended = Wg::new(a.n);
    let mut txs = Vec::with_capacity(a.n as usize);
    let started = Wg::new(a.n);
    for _ in 0..a.n {
        let (tx, rx) = oneshot::channel::<()>();
        txs.push(tx);
        let (s, e) = (started.clone(), ended.clone());
        tokio::spawn(async move {
            s.done();
            let _ = rx.await;
            e.done();
        });
    }
    started.wait().await;
    tokio::time::sleep(WAKE_SETTLE).await;
    let t = Instant::now();
    for tx in txs {
        let _ = tx.send(());
    }
    ended.wait().await;
    ns_per(t, a.n)
}

/// `n` tasks each waiting on a oneshot of its own; the senders and the time until all started.
async fn park_n(n: u64) -> (Vec<oneshot::Sender<()>>, Duration) {
    let t = Instant::now();
    let started = Wg::new(n);
    let mut txs = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (tx, rx) = oneshot::channel::<()>();
        txs.push(tx);
        let s = started.clone();
        tokio::spawn(async move {
            s.done();
            let _ = rx.await;
        });
    }
    started.wait().await;
    (txs, t.elapsed())
}

/// Creating tasks that wait on a oneshot each, until all started; ns per task.
async fn parked_create(a: &Args) -> f64 {
    let (txs, took) = park_n(a.n).await;
    drop(txs);
    took.as_nanos() as f64 / a.n as f64
}

/// Two tasks over two one-slot channels (tokio has no rendezvous); ns per round trip.
async fn pingpong(a: &Args) -> f64 {
    let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
    tokio::spawn(async move {
        while let Some(v) = ping_rx.recv().await {
            if pong_tx.send(v).await.is_err() {
                break;
            }
        }
    });
    let t = Instant::now();
    for i in 0..a.n {
        ping_tx.send(i).await.unwrap();
        pong_rx.recv().await.unwrap();
    }
    ns_per(t, a.n)
}

/// A ring of `RING` tasks passing a token `n` hops; ns per hop.
async fn ring(a: &Args) -> f64 {
    let mut txs = Vec::with_capacity(RING);
    let mut rxs = Vec::with_capacity(RING);
    for _ in 0..RING {
        let (tx, rx) = mpsc::channel::<u64>(1);
        txs.push(tx);
        rxs.push(Some(rx));
    }
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    for i in 0..RING {
        let mut inp = rxs[i].take().unwrap();
        let out = txs[(i + 1) % RING].clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            while let Some(v) = inp.recv().await {
                if v == 0 {
                    let _ = done.send(()).await;
                } else if out.send(v - 1).await.is_err() {
                    break;
                }
            }
        });
    }
    let t = Instant::now();
    txs[0].send(a.n).await.unwrap();
    done_rx.recv().await.unwrap();
    ns_per(t, a.n)
}

/// `CONTENDERS` tasks each calling `bump` (a lock, an increment, an unlock) n / CONTENDERS
/// times; ns per call, and how many calls that was.
async fn contend<F, Fut>(a: &Args, bump: F) -> (f64, u64)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per = a.n / CONTENDERS;
    let wg = Wg::new(CONTENDERS);
    let t = Instant::now();
    for _ in 0..CONTENDERS {
        let (bump, wg) = (bump.clone(), wg.clone());
        tokio::spawn(async move {
            for _ in 0..per {
                bump().await;
            }
            wg.done();
        });
    }
    wg.wait().await;
    (ns_per(t, per * CONTENDERS), per * CONTENDERS)
}

/// `contend` on one `std::sync::Mutex`: what tokio's documentation advises for a short
/// critical section that does not await (`mutex_async` is tokio's own, fair, async Mutex).
async fn mutex(a: &Args) -> f64 {
    let m = Arc::new(std::sync::Mutex::new(0u64));
    let mm = m.clone();
    let (ns, calls) = contend(a, move || {
        *mm.lock().unwrap() += 1;
        std::future::ready(())
    })
    .await;
    assert_eq!(*m.lock().unwrap(), calls);
    ns
}

/// `contend` on tokio's async Mutex.
async fn mutex_async(a: &Args) -> f64 {
    let m = Arc::new(tokio::sync::Mutex::new(0u64));
    let mm = m.clone();
    let (ns, calls) = contend(a, move || {
        let m = mm.clone();
        async move { *m.lock().await += 1 }
    })
    .await;
    assert_eq!(*m.lock().await, calls);
    ns
}

/// n tasks sleeping uniformly 1-10 ms each (`sleeper_duration`); ms until all woke.
async fn sleepers(a: &Args) -> f64 {
    let wg = Wg::new(a.n);
    let t = Instant::now();
    for i in 0..a.n {
        let wg = wg.clone();
        tokio::spawn(async move {
            tokio::time::sleep(sleeper_duration(i)).await;
            wg.done();
        });
    }
    wg.wait().await;
    t.elapsed().as_secs_f64() * 1e3
}

/// `block_in_place` around getpid(2), n times; ns per call.
fn blocking(a: &Args) -> f64 {
    let t = Instant::now();
    for _ in 0..a.n {
        // SAFETY: getpid has no preconditions.
        std::hint::black_box(tokio::task::block_in_place(|| unsafe { libc::getpid() }));
    }
    ns_per(t, a.n)
}

/// As gort_peer's `idle_conns`: a task per idle connection, parked in a read into a 4 KiB
/// buffer of its own.
async fn idle_conns(a: &Args, settled: bool) -> f64 {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    gort_benches::raise_nofile(a.n + 1024);
    let before = mem_now();
    let parked = Arc::new(AtomicU64::new(0));
    let mut addrs = Vec::new();
    for _ in 0..gort_benches::IDLE_PORTS {
        let ln = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(ln.local_addr().unwrap());
        let parked = parked.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = ln.accept().await {
                let parked = parked.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    parked.fetch_add(1, Ordering::Relaxed);
                    let _ = c.read(&mut buf).await;
                });
            }
        });
    }
    let client = tokio::task::spawn_blocking({
        let n = a.n;
        move || gort_benches::start_idle_client(&addrs, n)
    })
    .await
    .unwrap();
    while parked.load(Ordering::Relaxed) < a.n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    if settled {
        tokio::time::sleep(settle()).await;
    }
    let after = mem_now();
    gort_benches::end_idle_client(client);
    (after.saturating_sub(before)) as f64 / a.n as f64
}

/// TCP echo over loopback (see gort_peer's `tcp_echo`): tasks instead of goroutines.
async fn tcp_echo(a: &Args) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    let conns = a.n;
    let per = ECHO_MSGS / conns;
    let ln = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = ln.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut c, _) = ln.accept().await.unwrap();
            c.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match c.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => c.write_all(&buf[..n]).await.unwrap(),
                    }
                }
            });
        }
    });
    let ready = Arc::new(tokio::sync::Barrier::new(conns as usize + 1));
    let start = Arc::new(Notify::new());
    let mut tasks = Vec::with_capacity(conns as usize);
    for _ in 0..conns {
        let (ready, start) = (ready.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let msg = [7u8; ECHO_SIZE];
            let mut back = [0u8; ECHO_SIZE];
            let go = start.notified();
            ready.wait().await;
            go.await;
            for _ in 0..per {
                s.write_all(&msg).await.unwrap();
                s.read_exact(&mut back).await.unwrap();
            }
        }));
    }
    ready.wait().await;
    let t = Instant::now();
    start.notify_waiters();
    for task in tasks {
        task.await.unwrap();
    }
    ns_per(t, per * conns)
}

fn main() {
    let a = args();
    // `TOKIO_FLAVOR=current_thread` (at P=1 only): tokio's single-threaded runtime, which a
    // tokio user at one core would pick; otherwise the multi-thread one with P workers.
    let current = std::env::var("TOKIO_FLAVOR").is_ok_and(|f| f == "current_thread");
    let mut b = if current {
        assert_eq!(a.procs, 1, "tokio_peer: current_thread runs at P=1 only");
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(a.procs);
        b
    };
    let rt = b.enable_time().enable_io().build().unwrap();
    let (value, unit) = rt.block_on(async move {
        tokio::spawn(async move {
            match a.workload.as_str() {
                "spawn" => (spawn(&a).await, "ns"),
                "yield" => (yield_(&a).await, "ns"),
                "skynet" => (skynet(&a).await, "ms"),
                "parked_mem" => (parked_mem(&a, true).await, "B"),
                "parked_mem_now" => (parked_mem(&a, false).await, "B"),
                "wake_parked" => (wake_parked(&a).await, "ns"),
                "idle_conns" => (idle_conns(&a, true).await, "B"),
                "idle_conns_now" => (idle_conns(&a, false).await, "B"),
                "parked_create" => (parked_create(&a).await, "ns"),
                "pingpong" => (pingpong(&a).await, "ns"),
                "ring" => (ring(&a).await, "ns"),
                "mutex" => (mutex(&a).await, "ns"),
                "mutex_async" => (mutex_async(&a).await, "ns"),
                "sleepers" => (sleepers(&a).await, "ms"),
                "blocking" => (blocking(&a), "ns"),
                "tcp_echo" => (tcp_echo(&a).await, "ns"),
                w => {
                    eprintln!("tokio_peer: unknown workload {w}");
                    std::process::exit(64)
                }
            }
        })
        .await
        .unwrap()
    });
    report(&args(), value, unit);
    std::process::exit(0);
}
