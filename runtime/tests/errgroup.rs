//! `gort::errgroup` through the public API: the first error is returned and cancels the
//! others, a limit bounds the goroutines at once, try_go respects it, and Goexit or success
//! paths release their slots.

#[macro_use]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use gort::errgroup::Group;

rt_test! {
    /// The first error wins; the others, blocked on the group's context, are cancelled and
    /// return their own (later) errors, which are dropped.
    fn the_first_error_is_returned_and_cancels_the_rest() {
        let (g, ctx) = Group::<String>::with_context(&gort::context::background());
        let cancelled = Arc::new(AtomicUsize::new(0));
        for i in 0..20 {
            let (ctx, cancelled) = (ctx.clone(), cancelled.clone());
            g.go(move || {
                if i == 7 {
                    gort::time::sleep(Duration::from_millis(5));
                    return Err("seven".to_string());
                }
                gort::select! {
                    recv(ctx.done()) -> _ => {
                        cancelled.fetch_add(1, SeqCst);
                        Err(format!("{i} cancelled"))
                    },
                    recv(gort::time::after(Duration::from_secs(30))) -> _ => Ok(()),
                }
            });
        }
        assert_eq!(g.wait(), Err("seven".to_string()));
        assert_eq!(cancelled.load(SeqCst), 19);
        assert_eq!(ctx.err(), Some(gort::context::Error::Canceled));
        assert_eq!(g.wait(), Err("seven".to_string()), "every wait returns the first error");
    }
}

rt_test! {
    /// A limit of 3: never more than 3 at once, all 50 run; Goexit releases a slot too.
    fn a_limit_bounds_the_goroutines_at_once() {
        let g = Group::<String>::new();
        g.set_limit(Some(3));
        let (now, max, ran) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        for i in 0..50 {
            let (now, max, ran) = (now.clone(), max.clone(), ran.clone());
            g.go(move || {
                max.fetch_max(now.fetch_add(1, SeqCst) + 1, SeqCst);
                gort::time::sleep(Duration::from_millis(1));
                now.fetch_sub(1, SeqCst);
                ran.fetch_add(1, SeqCst);
                if i % 10 == 0 {
                    gort::goexit();
                }
                Ok(())
            });
        }
        assert_eq!(g.wait(), Ok(()));
        assert_eq!(ran.load(SeqCst), 50);
        assert!(max.load(SeqCst) <= 3, "{} at once", max.load(SeqCst));
        // No goroutine active: the limit may change now.
        g.set_limit(None);
        assert!(g.try_go(|| Ok(())));
        assert_eq!(g.wait(), Ok(()));
    }
}

/// Changing the limit while goroutines run is Go's panic.
#[gort::test(procs = 2)]
fn changing_the_limit_while_goroutines_run_panics() {
    let g = Group::<String>::new();
    g.set_limit(Some(1));
    let gate: gort::Chan<()> = gort::Chan::new(0);
    let gt = gate.clone();
    g.go(move || {
        gt.recv();
        Ok(())
    });
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.set_limit(Some(5))));
    let payload = p.expect_err("set_limit must panic");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .or_else(|| payload.downcast_ref::<gort::Panic>().map(|p| p.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("modify limit while 1 goroutines"), "{msg:?}");
    gate.send(());
    assert_eq!(g.wait(), Ok(()));
}
