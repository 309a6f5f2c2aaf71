//! Mutex, RwLock, Cond, Once and the timers through the public API.

#[macro_use]
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::time::{sleep, Ticker, Timer};
use gort::{Chan, Cond, Mutex, RwLock};

rt_test! {
    fn mutex_excludes_across_parks() {
        let m = Arc::new(Mutex::new(Vec::new()));
        let wg = gort::WaitGroup::new();
        for g in 0..20 {
            wg.add(1);
            let (m, wg) = (m.clone(), wg.clone());
            gort::go!(move || {
                for i in 0..50 {
                    let mut v = m.lock();
                    let len = v.len();
                    gort::yield_now(); // park while holding it: nobody else may enter
                    assert_eq!(v.len(), len);
                    v.push((g, i));
                }
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(m.lock().len(), 1000);
    }
}

#[test]
fn mutex_starvation_mode_hands_the_lock_to_a_waiter() {
    // The hog re-locks right after every unlock and yields while holding the lock, so a woken
    // waiter always finds it locked again: in normal mode it would lose forever. After 1 ms
    // of waiting the mutex turns to starvation mode and the unlock hands it over.
    gort::Builder::new().procs(1).run(|| {
        let m = Arc::new(Mutex::new(0u64));
        let stop = Arc::new(AtomicBool::new(false));
        let (m2, stop2) = (m.clone(), stop.clone());
        let hog = gort::spawn(move || {
            // Bounded: without starvation mode the waiter never gets in, and the test fails
            // (below) instead of hanging.
            let t = Instant::now();
            while !stop2.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(5) {
                let mut g = m2.lock();
                *g += 1;
                gort::yield_now();
                drop(g);
            }
        });
        gort::time::sleep(Duration::from_millis(2));
        let t = Instant::now();
        for _ in 0..20 {
            drop(m.lock());
        }
        let took = t.elapsed();
        stop.store(true, Ordering::Relaxed);
        hog.join();
        assert!(took < Duration::from_secs(2), "waiter starved for {took:?}");
    });
}

rt_test! {
    fn rwlock_readers_share_and_writers_exclude() {
        let l = Arc::new(RwLock::new(0u64));
        let inside = Arc::new(AtomicUsize::new(0));
        let max_readers = Arc::new(AtomicUsize::new(0));
        let wg = gort::WaitGroup::new();
        for k in 0..16 {
            wg.add(1);
            let (l, inside, max_readers, wg) =
                (l.clone(), inside.clone(), max_readers.clone(), wg.clone());
            gort::go!(move || {
                for _ in 0..50 {
                    if k % 4 == 0 {
                        let mut w = l.write();
                        assert_eq!(inside.load(Ordering::SeqCst), 0, "a reader inside a write");
                        *w += 1;
                        gort::yield_now();
                    } else {
                        let r = l.read();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        max_readers.fetch_max(n, Ordering::SeqCst);
                        let _ = *r;
                        gort::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(*l.read(), 4 * 50);
        assert!(max_readers.load(Ordering::SeqCst) >= 1);
    }
}

rt_test! {
    fn cond_signal_and_broadcast() {
        let state = Arc::new((Mutex::new(0u32), Cond::new()));
        let done = gort::WaitGroup::new();
        for _ in 0..8 {
            done.add(1);
            let (s, done) = (state.clone(), done.clone());
            gort::go!(move || {
                let (m, c) = &*s;
                let mut g = m.lock();
                while *g == 0 {
                    g = c.wait(g);
                }
                *g += 1;
                drop(g);
                done.done();
            });
        }
        gort::time::sleep(Duration::from_millis(2));
        {
            let (m, c) = &*state;
            *m.lock() = 1;
            c.signal();
            c.broadcast();
        }
        done.wait();
        assert_eq!(*state.0.lock(), 9);
    }
}

rt_test! {
    fn sleeping_goroutines_hold_no_thread() {
        // 200 goroutines sleeping 50 ms at once on whatever P count: ~50 ms, not 200 x 50.
        let t = Instant::now();
        let wg = gort::WaitGroup::new();
        for _ in 0..200 {
            wg.add(1);
            let wg = wg.clone();
            gort::go!(move || {
                sleep(Duration::from_millis(50));
                wg.done();
            });
        }
        wg.wait();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(50));
        assert!(took < Duration::from_secs(3), "{took:?}");
    }
}

rt_test! {
    fn sleeps_end_in_deadline_order() {
        let order = Chan::new(8);
        for ms in [40u64, 10, 30, 20] {
            let o = order.clone();
            gort::go!(move || {
                sleep(Duration::from_millis(ms));
                o.send(ms);
            });
        }
        let got: Vec<u64> = (0..4).map(|_| order.recv().unwrap()).collect();
        assert_eq!(got, [10, 20, 30, 40]);
    }
}

rt_test! {
    fn timer_stop_reset_and_ticker() {
        let t = Timer::new(Duration::from_millis(5));
        assert!(t.stop());
        assert!(!t.stop());
        gort::time::sleep(Duration::from_millis(10));
        assert!(t.chan().try_recv().is_err(), "a stopped timer does not fire");
        assert!(!t.reset(Duration::from_millis(5)));
        assert!(t.chan().recv().is_some());
        let tk = Ticker::new(Duration::from_millis(2));
        let start = Instant::now();
        for _ in 0..5 {
            tk.chan().recv();
        }
        assert!(start.elapsed() >= Duration::from_millis(8));
        tk.stop();
        let _ = tk.chan().try_recv(); // a tick may have been sent before stop
        gort::time::sleep(Duration::from_millis(10));
        assert!(tk.chan().try_recv().is_err(), "a stopped ticker does not tick");
    }
}

#[test]
fn a_timer_added_from_a_thread_wakes_a_sleeping_m() {
    // Every M sleeps without a deadline when a plain thread adds a timer: one must be kicked
    // to fire it.
    gort::Builder::new().procs(2).run(|| {
        let handle = gort::Handle::current();
        let c = Chan::new(0);
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20)); // every M is asleep by now
            let _e = handle.enter();
            let tick = gort::time::after(Duration::from_millis(10));
            assert!(tick.recv().is_some()); // this thread blocks until an M fires it
            c2.send(());
        });
        c.recv();
        t.join().unwrap();
    });
}

#[test]
fn a_negative_waitgroup_counter_panics_with_gos_text() {
    let wg = gort::WaitGroup::new();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wg.done()));
    let p = r.expect_err("done without add");
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .expect("a text");
    assert_eq!(msg, "sync: negative WaitGroup counter");
}

rt_test! {
    /// Go's TryRLock and TryLock: readers share, a held or pending writer turns new readers
    /// away (writer preference), and neither call ever parks.
    fn rwlock_try_read_and_try_write_follow_the_writer_preference() {
        let l = Arc::new(RwLock::new(0u32));
        let r = l.try_read().expect("a free lock");
        assert!(l.try_read().is_some(), "readers share");
        assert!(l.try_write().is_none(), "a reader is inside");
        // A writer queues behind the reader: from then on, try_read fails too.
        let (l2, got) = (l.clone(), Arc::new(AtomicBool::new(false)));
        let g2 = got.clone();
        let wg = gort::WaitGroup::new();
        let w2 = wg.clone();
        wg.add(1);
        gort::go!(move || {
            *l2.write() += 1;
            g2.store(true, Ordering::SeqCst);
            w2.done();
        });
        let t = Instant::now();
        while l.try_read().is_some() {
            assert!(t.elapsed() < Duration::from_secs(5), "the writer never queued");
            gort::yield_now();
        }
        assert!(l.try_write().is_none(), "a writer waits");
        assert!(!got.load(Ordering::SeqCst));
        drop(r);
        wg.wait();
        assert!(got.load(Ordering::SeqCst));
        let w = l.try_write().expect("free again");
        assert_eq!(*w, 1);
        assert!(l.try_read().is_none() && l.try_write().is_none());
        drop(w);
        assert_eq!(*l.try_read().unwrap(), 1);
    }
}

rt_test! {
    /// Go's wg.Go: the count covers the goroutine, and drops however it ends (return, or
    /// Goexit, which runs deferred calls in Go and unwinds here).
    fn waitgroup_go_counts_goroutines_however_they_end() {
        let wg = gort::WaitGroup::new();
        let hits = Arc::new(AtomicUsize::new(0));
        for i in 0..100 {
            let hits = hits.clone();
            wg.go(move || {
                gort::yield_now();
                hits.fetch_add(1, Ordering::SeqCst);
                if i % 10 == 0 {
                    gort::goexit();
                }
            });
        }
        wg.wait();
        assert_eq!(hits.load(Ordering::SeqCst), 100);
    }
}

rt_test! {
    /// Go's time.AfterFunc: functions run in deadline order, each in a goroutine of its own; a
    /// stopped one never runs (stop is true), a reset one runs again, stop after it ran is
    /// false.
    fn after_func_runs_in_deadline_order_and_follows_stop_and_reset() {
        let ran: Chan<u32> = Chan::new(16);
        let mut timers = Vec::new();
        for (id, ms) in [(3u32, 60u64), (1, 20), (2, 40)] {
            let r = ran.clone();
            timers.push(gort::time::after_func(Duration::from_millis(ms), move || {
                r.send(id);
            }));
        }
        let stopped = {
            let r = ran.clone();
            gort::time::after_func(Duration::from_millis(30), move || r.send(99))
        };
        assert!(stopped.stop(), "stopped before it fired");
        assert!(!stopped.stop(), "a second stop finds nothing to stop");
        let order: Vec<u32> = (0..3).map(|_| ran.recv().unwrap()).collect();
        assert_eq!(order, [1, 2, 3]);
        // Fired already: stop is false; reset arms it again and it runs again.
        assert!(!timers[1].stop());
        assert!(!timers[1].reset(Duration::from_millis(5)));
        assert_eq!(ran.recv(), Some(1));
        sleep(Duration::from_millis(50));
        assert!(ran.try_recv().is_err(), "the stopped function ran: {:?}", ran.try_recv());
        // An after_func timer's channel never receives.
        assert!(timers[0].chan().try_recv().is_err());
    }
}

rt_test! {
    /// OnceCell: one initialiser among 50 concurrent callers, the others park until it is
    /// done and all see its value; a panicking initialiser makes later calls panic.
    fn once_cell_initialises_once_and_waiters_park() {
        let cell = Arc::new(gort::OnceCell::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let wg = gort::WaitGroup::new();
        for i in 0..50usize {
            let (cell, calls) = (cell.clone(), calls.clone());
            wg.go(move || {
                let v = cell.get_or_init(|| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    sleep(Duration::from_millis(10)); // the others park meanwhile
                    i * 1000
                });
                assert_eq!(cell.get(), Some(v));
            });
        }
        wg.wait();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let v = *cell.get().unwrap();
        assert_eq!(v % 1000, 0);

        let bad: gort::OnceCell<u32> = gort::OnceCell::new();
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            bad.get_or_init(|| panic!("boom"));
        }));
        assert!(first.is_err());
        assert_eq!(bad.get(), None);
        let later = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            bad.get_or_init(|| 1);
        }));
        assert!(later.is_err(), "a later call must panic, not initialise again");
    }
}
