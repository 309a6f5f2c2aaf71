//! `gort::context` through the public API: cancellation reaches goroutines parked in
//! `select!`, propagates down the tree and not up, deadlines fire and inherit, values are
//! found by key, and cancelled contexts leave no timers or registrations behind.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use gort::context::{self, Error};
use gort::{Chan, WaitGroup};

rt_test! {
    /// Go's pipeline shape: workers block in select! on their work and ctx.done(); one cancel
    /// stops them all, and every one sees Canceled.
    fn cancel_reaches_goroutines_parked_in_select() {
        let (ctx, cancel) = context::with_cancel(&context::background());
        let work: Chan<u32> = Chan::new(0);
        let stopped: Chan<Option<Error>> = Chan::new(16);
        for _ in 0..16 {
            let (ctx, work, stopped) = (ctx.clone(), work.clone(), stopped.clone());
            gort::go!(move || loop {
                gort::select! {
                    recv(ctx.done()) -> _ => {
                        stopped.send(ctx.err());
                        return;
                    },
                    recv(work) -> _ => {},
                }
            });
        }
        for i in 0..100 {
            work.send(i);
        }
        cancel.cancel();
        cancel.cancel(); // a second call does nothing
        for _ in 0..16 {
            assert_eq!(stopped.recv().unwrap(), Some(Error::Canceled));
        }
    }
}

rt_test! {
    /// Cancelling a parent cancels the whole subtree (value nodes in between included);
    /// cancelling a child leaves the parent and siblings alone.
    fn cancellation_propagates_down_not_up() {
        let (root, cancel_root) = context::with_cancel(&context::background());
        let (a, cancel_a) = context::with_cancel(&root);
        let (b, _cancel_b) = context::with_cancel(&root);
        #[derive(PartialEq)]
        struct K;
        let bv = context::with_value(&b, K, 7u32);
        let (b1, _cancel_b1) = context::with_cancel(&bv);
        cancel_a.cancel();
        assert_eq!(a.err(), Some(Error::Canceled));
        assert_eq!(root.err(), None);
        assert_eq!(b.err(), None);
        assert!(b1.done().try_recv().is_err());
        cancel_root.cancel();
        for c in [&root, &b, &bv, &b1] {
            assert_eq!(c.err(), Some(Error::Canceled));
            assert_eq!(c.done().recv(), None);
        }
        // A child of a cancelled context is born cancelled.
        let (late, _c) = context::with_cancel(&b1);
        assert_eq!(late.err(), Some(Error::Canceled));
        assert_eq!(bv.value::<K, u32>(&K).as_deref(), Some(&7));
    }
}

rt_test! {
    /// Deadlines: the earlier of a child's and its parent's counts; expiry is
    /// DeadlineExceeded down the tree; an explicit cancel first is Canceled.
    fn deadlines_fire_inherit_and_lose_to_an_earlier_cancel() {
        let t = Instant::now();
        let (short, _c1) = context::with_timeout(&context::background(), Duration::from_millis(20));
        let (longer, _c2) = context::with_timeout(&short, Duration::from_secs(60));
        assert_eq!(longer.deadline(), short.deadline(), "the parent's earlier deadline wins");
        let (child, _c3) = context::with_cancel(&longer);
        gort::select! {
            recv(child.done()) -> _ => {},
            recv(gort::time::after(Duration::from_secs(10))) -> _ => panic!("the deadline never fired"),
        }
        assert!(t.elapsed() >= Duration::from_millis(20));
        for c in [&short, &longer, &child] {
            assert_eq!(c.err(), Some(Error::DeadlineExceeded));
        }
        let (ctx, cancel) = context::with_timeout(&context::background(), Duration::from_millis(30));
        cancel.cancel();
        gort::time::sleep(Duration::from_millis(60));
        assert_eq!(ctx.err(), Some(Error::Canceled));
        // A deadline already past: done at once.
        let (past, _c) = context::with_deadline(&context::background(), Instant::now());
        assert_eq!(past.err(), Some(Error::DeadlineExceeded));
    }
}

rt_test! {
    /// Values: the nearest wins, keys compare by type and value, a wrong value type is None.
    fn values_are_found_by_key_type_and_value() {
        #[derive(PartialEq)]
        struct User;
        #[derive(PartialEq)]
        struct Slot(u8);
        let base = context::background();
        let a = context::with_value(&base, User, "alice");
        let b = context::with_value(&a, Slot(1), 10u64);
        let c = context::with_value(&b, User, "bob");
        let (d, _cancel) = context::with_cancel(&c);
        assert_eq!(d.value::<_, &str>(&User).as_deref(), Some(&"bob"));
        assert_eq!(b.value::<_, &str>(&User).as_deref(), Some(&"alice"));
        assert_eq!(d.value::<_, u64>(&Slot(1)).as_deref(), Some(&10));
        assert!(d.value::<_, u64>(&Slot(2)).is_none());
        assert!(d.value::<_, u32>(&Slot(1)).is_none(), "stored as u64");
        assert!(base.value::<_, &str>(&User).is_none());
        assert!(base.done().try_recv().is_err(), "background is never done");
    }
}

/// Many short-lived timeouts under one long-lived parent, each cancelled at once: no
/// goroutine is left behind, and the parent's list of children does not grow.
#[gort::test(procs = 2)]
fn cancelled_contexts_leave_nothing_behind() {
    let (root, cancel_root) = context::with_cancel(&context::background());
    let before = gort::num_goroutine();
    let wg = WaitGroup::new();
    for _ in 0..1000 {
        let root = root.clone();
        wg.go(move || {
            let (ctx, cancel) = context::with_timeout(&root, Duration::from_secs(3600));
            assert_eq!(ctx.err(), None);
            cancel.cancel();
        });
    }
    wg.wait();
    gort::time::sleep(Duration::from_millis(20));
    assert_eq!(gort::num_goroutine(), before);
    // Still works afterwards, and a cancel reaches a child made after the churn.
    let (c, _k) = context::with_cancel(&root);
    cancel_root.cancel();
    assert_eq!(c.err(), Some(Error::Canceled));
    assert_eq!(
        format!("{}", Error::DeadlineExceeded),
        "context deadline exceeded"
    );
}

rt_test! {
    /// Go 1.21's context.AfterFunc: the function runs once, in a goroutine of its own, when
    /// the context is done; stop afterwards reports that it already ran.
    fn after_func_runs_once_in_its_own_goroutine_when_done() {
        let (ctx, cancel) = context::with_cancel(&context::background());
        let ran: Chan<u64> = Chan::new(4);
        let r = ran.clone();
        let stop = ctx.after_func(move || r.send(gort::goid()));
        assert!(ran.try_recv().is_err(), "ran before the cancel");
        cancel.cancel();
        cancel.cancel();
        let goid = ran.recv().unwrap();
        assert_ne!(goid, gort::goid());
        gort::time::sleep(Duration::from_millis(5));
        assert!(ran.try_recv().is_err(), "ran twice");
        assert!(!stop.stop());
    }
}

rt_test! {
    fn a_stopped_after_func_never_runs_and_stop_reports_it_once() {
        let (ctx, cancel) = context::with_cancel(&context::background());
        let stop = ctx.after_func(|| panic!("a stopped function ran"));
        assert!(stop.stop());
        assert!(!stop.stop());
        cancel.cancel();
        gort::time::sleep(Duration::from_millis(5));
        // A context that is never done: never runs; the first stop keeps it from running.
        let never = context::background().after_func(|| panic!("background is never done"));
        assert!(never.stop());
        assert!(!never.stop());
    }
}

rt_test! {
    fn after_func_on_a_done_context_starts_at_once_and_deadlines_start_it_too() {
        let (ctx, cancel) = context::with_cancel(&context::background());
        cancel.cancel();
        let ran: Chan<&str> = Chan::new(2);
        let r = ran.clone();
        let stop = ctx.after_func(move || r.send("done already"));
        assert_eq!(ran.recv(), Some("done already"));
        assert!(!stop.stop());

        let t = Instant::now();
        let (ctx, _cancel) = context::with_timeout(&context::background(), Duration::from_millis(5));
        let r = ran.clone();
        ctx.after_func(move || r.send("deadline"));
        assert_eq!(ran.recv(), Some("deadline"));
        assert!(t.elapsed() >= Duration::from_millis(5));
    }
}

rt_test! {
    /// Every handle of the context dropped, only its parent kept: the registration keeps the
    /// context reachable, so cancelling the parent still runs the function (Go's parent holds
    /// its children; gort's holds them weakly, and the registration pins its context).
    fn after_func_runs_even_when_every_handle_of_its_context_is_gone() {
        let (parent, cancel) = context::with_cancel(&context::background());
        let ran: Chan<()> = Chan::new(1);
        {
            let (child, child_cancel) = context::with_cancel(&parent);
            let r = ran.clone();
            let _ = child.after_func(move || r.send(()));
            drop(child_cancel);
        }
        cancel.cancel();
        assert_eq!(ran.recv_timeout(Duration::from_secs(5)), Ok(()));
    }
}

rt_test! {
    /// The seam for network I/O: a read blocked on a socket ends with TimedOut when the
    /// context is cancelled, through a deadline set by an after_func.
    fn cancelling_a_context_ends_a_blocked_read_through_after_func() {
        use std::io::{ErrorKind, Read};
        use gort::net::{TcpListener, TcpStream};
        let ln = TcpListener::bind("127.0.0.1:0").unwrap();
        let _peer = TcpStream::connect(ln.local_addr().unwrap()).unwrap();
        let (conn, _) = ln.accept().unwrap();
        let (ctx, cancel) = context::with_cancel(&context::background());
        let c = conn.try_clone().unwrap();
        let _stop = ctx.after_func(move || {
            c.set_deadline(Some(Instant::now())).unwrap();
        });
        let result: Chan<ErrorKind> = Chan::new(1);
        let res = result.clone();
        gort::go!(move || {
            let mut conn = conn;
            let e = conn.read(&mut [0u8; 8]).unwrap_err();
            res.send(e.kind());
        });
        gort::time::sleep(Duration::from_millis(10)); // the reader is parked in read
        assert!(result.try_recv().is_err());
        cancel.cancel();
        assert_eq!(result.recv(), Some(ErrorKind::TimedOut));
    }
}
