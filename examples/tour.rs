//! A tour of what gort can do so far. Run with `cargo run --release --example tour`.
//!
//! Each stop prints what it shows; the numbers come from this run, not from a table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn square(n: u64, out: Arc<Mutex<Vec<u64>>>, wg: gort::WaitGroup) {
    out.lock().unwrap().push(n * n);
    wg.done();
}

fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let a = gort::spawn(move || fib(n - 1));
    let b = fib(n - 2);
    a.join() + b
}

/// Go's recover-into-an-error-result idiom: the deferred closure gets the result as `&mut`.
#[gort::func]
fn parse_all(items: &[&str]) -> Result<Vec<u32>, String> {
    defer!(|r| {
        if let Some(p) = gort::recover() {
            r.set(Err(format!("recovered: {p}")));
        }
    });
    Ok(items.iter().map(|s| s.parse::<u32>().unwrap()).collect())
}

fn note(log: &Mutex<Vec<String>>, what: String) {
    log.lock().unwrap().push(what);
}

/// Deferred calls run newest first; their arguments are evaluated at the `defer!`.
#[gort::func]
fn lifo(log: &Mutex<Vec<String>>) {
    for i in 0..3 {
        defer!(note(log, format!("deferred {i}")));
    }
    note(log, "body".to_string());
}

gort::goroutine_local! {
    static REQUEST_ID: std::cell::Cell<u64> = std::cell::Cell::new(0);
}

#[gort::main]
fn main() {
    defer!(println!("== main's deferred call runs last"));
    println!(
        "== gort tour: GOMAXPROCS={}, main is goroutine {}",
        gort::gomaxprocs(),
        gort::goid()
    );

    // 1. go! evaluates the function and its arguments where it stands, as Go does.
    let out = Arc::new(Mutex::new(Vec::new()));
    let wg = gort::WaitGroup::new();
    for n in 1..=5 {
        wg.add(1);
        gort::go!(square(n, out.clone(), wg.clone()));
    }
    wg.wait();
    let mut squares = out.lock().unwrap().clone();
    squares.sort();
    println!("1. go!(square(n, ..)) x5 -> {squares:?}");

    // 2. Many goroutines are cheap: each has a fixed stack window; memory is committed on touch.
    let n = 100_000u64;
    let t = Instant::now();
    let sum = Arc::new(AtomicU64::new(0));
    let wg = gort::WaitGroup::new();
    for i in 0..n {
        wg.add(1);
        let (sum, wg) = (sum.clone(), wg.clone());
        gort::go!(move || {
            sum.fetch_add(i, Ordering::Relaxed);
            wg.done();
        });
    }
    wg.wait();
    println!(
        "2. {n} goroutines started and finished in {:?} (sum {})",
        t.elapsed(),
        sum.load(Ordering::Relaxed)
    );

    // 3. Blocking-style code: a goroutine that joins parks; its thread runs others.
    let t = Instant::now();
    println!(
        "3. fib(20) with a goroutine per call = {} in {:?}",
        fib(20),
        t.elapsed()
    );

    // 4. yield_now is Go's Gosched.
    let h = gort::spawn(|| {
        for _ in 0..3 {
            gort::yield_now();
        }
        "yielded 3 times"
    });
    println!("4. spawn + join: {}", h.join());

    // 5. Goroutine-local storage follows a goroutine across threads.
    let hs: Vec<_> = (1..=3)
        .map(|id| {
            gort::spawn(move || {
                REQUEST_ID.with(|r| r.set(id * 100));
                gort::yield_now(); // may resume on another OS thread
                REQUEST_ID.with(|r| r.get())
            })
        })
        .collect();
    let ids: Vec<u64> = hs.into_iter().map(|h| h.join()).collect();
    println!("5. goroutine-local values after yielding: {ids:?}");

    // 6. Deep recursion: a #[gort::func] function (or a call wrapped in gort::maybe_grow)
    // continues on a further stack segment when its goroutine's 256 KiB window runs low, as
    // far as Go's 1 GB limit; a plain function stays within its window, which can be asked
    // to be bigger.
    #[gort::func]
    fn depth(n: u64) -> u64 {
        let pad = std::hint::black_box([n; 16]);
        if n == 0 {
            0
        } else {
            1 + depth(n - 1) + pad[0] - n
        }
    }
    let before = gort::debug::sched_stats().stack_growths;
    let d = gort::spawn(|| depth(200_000)).join();
    let segments = gort::debug::sched_stats().stack_growths - before;
    println!("6. recursion depth {d} in a default goroutine, on {segments} further stack segments");
    fn plain_depth(n: u64) -> u64 {
        let pad = std::hint::black_box([n; 16]);
        if n == 0 {
            0
        } else {
            1 + plain_depth(n - 1) + pad[0] - n
        }
    }
    let d = gort::GoBuilder::new()
        .stack_size(16 << 20)
        .spawn(|| plain_depth(50_000))
        .join();
    println!("   plain recursion depth {d} on a 16 MiB goroutine window");

    // 7. Plain OS threads can start goroutines through a Handle.
    let handle = gort::Handle::current();
    let done = gort::WaitGroup::new();
    done.add(1);
    let d2 = done.clone();
    let t = std::thread::spawn(move || {
        let v = handle.spawn(gort::goid).join();
        d2.done();
        v
    });
    done.wait(); // park this goroutine; don't block its thread in JoinHandle::join
    println!("7. a plain thread started goroutine {}", t.join().unwrap());

    // 8. defer!: newest first, arguments evaluated where defer! stands.
    let log = Mutex::new(Vec::new());
    lifo(&log);
    println!("8. defer! order: {:?}", log.lock().unwrap());

    // 9. panic + recover: a Rust panic (here an unwrap) becomes an error result.
    println!("9. parse_all(1, 2, 3) = {:?}", parse_all(&["1", "2", "3"]));
    println!("   parse_all(1, x)    = {:?}", parse_all(&["1", "x"]));
    let v = std::hint::black_box(vec![1, 2, 3]);
    let i = std::hint::black_box(7);
    let r = gort::frame! {
        defer!(|r: &mut gort::Named<String>| {
            r.set(gort::recover().map_or("no panic".into(), |p| p.to_string()));
        });
        v[i].to_string()
    };
    println!("   out of bounds, recovered as Go reads it: {r}");

    // 10. goexit runs every deferred call of the goroutine, then ends it.
    let wg = gort::WaitGroup::new();
    wg.add(1);
    let w = wg.clone();
    let ran = Arc::new(AtomicU64::new(0));
    let r2 = ran.clone();
    gort::go!(move || {
        defer!(w.done());
        defer!(move || {
            r2.fetch_add(1, Ordering::SeqCst);
        });
        gort::goexit();
    });
    wg.wait();
    println!(
        "10. goexit ran {} deferred call(s) plus the WaitGroup's",
        ran.load(Ordering::SeqCst)
    );

    // 11. Channels: an unbuffered ping-pong hands each value straight to the waiting receiver.
    let (ping, pong) = (gort::Chan::new(0), gort::Chan::new(0));
    let (pi, po) = (ping.clone(), pong.clone());
    gort::go!(move || {
        for v in &pi {
            po.send(v + 1);
        }
    });
    let t = Instant::now();
    let rounds = 100_000;
    for i in 0..rounds {
        ping.send(i);
        pong.recv();
    }
    println!(
        "11. {rounds} ping-pong round trips in {:?} ({:.0} ns each)",
        t.elapsed(),
        t.elapsed().as_nanos() as f64 / rounds as f64
    );
    ping.close();

    // 12. select! with a timeout, and a pipeline of goroutines (Go's prime sieve).
    let primes = gort::Chan::new(0);
    let p2 = primes.clone();
    gort::go!(move || {
        let mut ch = gort::Chan::new(0);
        let gen = ch.clone();
        gort::go!(move || {
            let mut i = 2;
            loop {
                gen.send(i);
                i += 1;
            }
        });
        loop {
            let prime: u64 = ch.recv().unwrap();
            p2.send(prime);
            let (inp, out) = (ch.clone(), gort::Chan::new(0));
            ch = out.clone();
            gort::go!(move || {
                for v in &inp {
                    if v % prime != 0 {
                        out.send(v);
                    }
                }
            });
        }
    });
    let mut first = Vec::new();
    loop {
        gort::select! {
            recv(primes) -> p => first.push(p.unwrap()),
            recv(gort::time::after(std::time::Duration::from_secs(1))) -> _ => break,
        }
        if first.len() == 10 {
            break;
        }
    }
    println!("12. the sieve's first primes: {first:?}");

    // 13. A goroutine-aware Mutex and sleeping goroutines that hold no thread.
    let counter = Arc::new(gort::Mutex::new(0u64));
    let wg = gort::WaitGroup::new();
    let t = Instant::now();
    for i in 0..1000u64 {
        wg.add(1);
        let (c, wg) = (counter.clone(), wg.clone());
        gort::go!(move || {
            gort::time::sleep(std::time::Duration::from_millis(10 + i % 10));
            *c.lock() += 1;
            wg.done();
        });
    }
    wg.wait();
    println!(
        "13. 1000 goroutines slept 10-19 ms each and counted {} in {:?}",
        *counter.lock(),
        t.elapsed()
    );

    // 14. Network I/O parks goroutines, not threads: a server and 100 clients over loopback,
    //     std's types and blocking-style code, on GOMAXPROCS threads.
    let ln = gort::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = ln.local_addr().unwrap();
    gort::go!(move || {
        for conn in ln.incoming() {
            let conn = conn.unwrap();
            // One goroutine per connection: read a request line, answer it.
            gort::go!(move || {
                use std::io::{BufRead, Write};
                let mut line = String::new();
                std::io::BufReader::new(&conn).read_line(&mut line).unwrap();
                let n: u64 = line.trim().parse().unwrap();
                writeln!(&conn, "{}", n * n).unwrap();
            });
        }
    });
    let t = Instant::now();
    let sum = Arc::new(AtomicU64::new(0));
    let wg = gort::WaitGroup::new();
    for n in 1..=100u64 {
        wg.add(1);
        let (sum, wg) = (sum.clone(), wg.clone());
        gort::go!(move || {
            use std::io::{BufRead, Write};
            let conn = gort::net::TcpStream::connect(addr).unwrap();
            writeln!(&conn, "{n}").unwrap();
            let mut line = String::new();
            std::io::BufReader::new(&conn).read_line(&mut line).unwrap();
            sum.fetch_add(line.trim().parse::<u64>().unwrap(), Ordering::Relaxed);
            wg.done();
        });
    }
    wg.wait();
    println!(
        "14. 100 TCP clients asked a goroutine server for squares over loopback: sum {} in {:?}",
        sum.load(Ordering::Relaxed),
        t.elapsed()
    );

    println!("   goroutines alive now: {}", gort::num_goroutine());
    println!("== main returns: the process exits without waiting for other goroutines");
}
