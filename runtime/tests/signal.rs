//! `gort::signal`: signals on channels (Go's `os/signal`), usable in `select!`, with `stop`,
//! and a program whose goroutines all wait for a signal is not a deadlock.

mod support;

use std::time::Duration;

use gort::signal::{self, SIGINT, SIGUSR1, SIGUSR2};

fn raise(sig: i32) {
    // SAFETY: raising a signal at ourselves; gort's handler takes it.
    unsafe { libc::raise(sig) };
}

/// Every process-wide handler test runs in a child: signals are the process's.
#[test]
fn signals_arrive_on_channels_and_stop_ends_them() {
    if !support::is_child() {
        let out = support::run_child("signals_arrive_on_channels_and_stop_ends_them", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    gort::Builder::new().procs(2).run(|| {
        let a: gort::Chan<i32> = gort::Chan::new(1);
        let b: gort::Chan<i32> = gort::Chan::new(4);
        signal::notify(&a, &[SIGUSR1, SIGINT]);
        signal::notify(&b, &[SIGUSR2, SIGINT]);
        raise(SIGUSR1);
        raise(SIGUSR2);
        let timeout = gort::time::after(Duration::from_secs(10));
        gort::select! {
            recv(a) -> s => assert_eq!(s, Some(SIGUSR1)),
            recv(timeout) -> _ => panic!("SIGUSR1 not delivered"),
        }
        assert_eq!(b.recv(), Some(SIGUSR2));
        // SIGINT goes to both, and does not end the process.
        raise(SIGINT);
        assert_eq!(a.recv(), Some(SIGINT));
        assert_eq!(b.recv(), Some(SIGINT));
        // After stop, `a` gets nothing; `b` still does.
        signal::stop(&a);
        raise(SIGUSR1);
        raise(SIGUSR2);
        assert_eq!(b.recv(), Some(SIGUSR2));
        gort::time::sleep(Duration::from_millis(50));
        assert!(a.try_recv().is_err(), "a stopped channel got a signal");
    });
}

/// Main waits for a signal only, which another process sends (a server waiting for Ctrl-C):
/// no deadlock report meanwhile, and the signal ends the wait.
#[test]
fn waiting_only_for_a_signal_is_not_a_deadlock() {
    if !support::is_child() {
        let exe = std::env::current_exe().unwrap();
        let child = std::process::Command::new(exe)
            .args([
                "waiting_only_for_a_signal_is_not_a_deadlock",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GORT_CHILD", "1")
            .env_remove("RUST_BACKTRACE")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Long enough for the child to register and for deadlock detection to look.
        std::thread::sleep(Duration::from_millis(700));
        // SAFETY: kill(2) with a pid we own.
        unsafe { libc::kill(child.id() as i32, SIGUSR2) };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("deadlock"), "{err}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("got SIGUSR2"));
        return;
    }
    // As `#[gort::test]` runs a body: the harness's own thread does not keep deadlock
    // detection quiet, only the signal watcher does.
    gort::__private::test(Some(1), None, || {
        let ch: gort::Chan<i32> = gort::Chan::new(1);
        signal::notify(&ch, &[SIGUSR2]);
        assert_eq!(ch.recv(), Some(SIGUSR2));
        println!("got SIGUSR2");
    });
}

#[test]
#[should_panic(expected = "cannot be relayed")]
fn uncatchable_signals_are_refused() {
    let ch: gort::Chan<i32> = gort::Chan::new(1);
    signal::notify(&ch, &[libc::SIGKILL]);
}
