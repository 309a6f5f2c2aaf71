//! Go's `os/signal`: Unix signals delivered on channels, so that a server can wait for SIGINT or
//! SIGTERM in a `select!` beside its other work.
//!
//! A process-wide handler (installed once per signal, the first time a channel asks for it)
//! writes the signal's number to a pipe, which is all a handler may safely do; a watcher thread
//! reads the pipe and sends the number on every channel registered for it, without blocking (a
//! channel whose buffer is full misses that delivery, as in Go: give it a buffer of 1).
//!
//! The watcher is a thread outside the runtimes that can wake goroutines, so deadlock detection
//! does not report a program whose goroutines all wait for a signal (Go does not either).
//!
//! ```
//! use gort::signal::{self, SIGUSR1};
//! gort::run(|| {
//!     let ch: gort::Chan<i32> = gort::Chan::new(1);
//!     signal::notify(&ch, &[SIGUSR1]); // Go: signal.Notify(ch, syscall.SIGUSR1)
//!     // SAFETY: raising a signal at ourselves, which the handler above now takes.
//!     unsafe { libc::raise(SIGUSR1) };
//!     gort::select! {
//!         recv(ch) -> sig => assert_eq!(sig, Some(SIGUSR1)),
//!         recv(gort::time::after(std::time::Duration::from_secs(10))) -> _ => panic!("no signal"),
//!     }
//!     signal::stop(&ch); // Go: signal.Stop(ch)
//! });
//! ```

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::chan::Chan;

pub use libc::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

/// The write end of the watcher's pipe (-1 until it exists).
static PIPE: AtomicI32 = AtomicI32::new(-1);

/// Channels per signal, and which signals have gort's handler.
struct Registry {
    subs: Vec<(i32, Chan<i32>)>,
    handled: Vec<i32>,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(|| {
        Mutex::new(Registry {
            subs: Vec::new(),
            handled: Vec::new(),
        })
    })
}

/// Go's `signal.Notify`: relays each of `signals` that the process receives to `ch` (its
/// number), from now on. The signal's default action (ending the process, for SIGINT and
/// SIGTERM) no longer happens while gort's handler is installed, even after `stop` (Go resets
/// it when no channel is left; gort keeps the handler and drops unwatched deliveries).
///
/// Give `ch` a buffer: a delivery finds it full and is dropped rather than block the watcher.
///
/// # Panics
/// For a signal that cannot be caught (SIGKILL, SIGSTOP) or one the runtime owns (SIGSEGV,
/// SIGBUS: stack overflow detection), and when the pipe or the watcher thread cannot be made.
#[track_caller]
pub fn notify(ch: &Chan<i32>, signals: &[i32]) {
    for &s in signals {
        if matches!(
            s,
            libc::SIGKILL | libc::SIGSTOP | libc::SIGSEGV | libc::SIGBUS
        ) {
            panic!("gort::signal::notify: signal {s} cannot be relayed");
        }
    }
    start_watcher();
    let mut r = registry().lock();
    for &s in signals {
        if !r.subs.iter().any(|(t, c)| *t == s && c == ch) {
            r.subs.push((s, ch.clone()));
        }
        if !r.handled.contains(&s) {
            // SAFETY: a zeroed sigaction is "no flags, empty mask"; the handler only calls
            // write(2), which is async-signal-safe.
            let ok = unsafe {
                let mut act: libc::sigaction = std::mem::zeroed();
                act.sa_sigaction = on_signal as *const () as usize;
                act.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut act.sa_mask);
                libc::sigaction(s, &act, std::ptr::null_mut()) == 0
            };
            if !ok {
                panic!(
                    "gort::signal::notify: cannot handle signal {s}: {}",
                    std::io::Error::last_os_error()
                );
            }
            r.handled.push(s);
        }
    }
}

/// Go's `signal.Stop`: `ch` receives no more signals.
pub fn stop(ch: &Chan<i32>) {
    registry().lock().subs.retain(|(_, c)| c != ch);
}

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = (sig as u8).to_ne_bytes();
        // SAFETY: write(2) of one byte from a live buffer; async-signal-safe. A full pipe
        // drops the delivery, as a full channel would.
        unsafe { libc::write(fd, b.as_ptr().cast(), 1) };
    }
}

#[track_caller]
fn start_watcher() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            panic!(
                "gort::signal: cannot make the signal pipe: {}",
                std::io::Error::last_os_error()
            );
        }
        // The read end blocks (the watcher sleeps in read); the write end stays non-blocking.
        // SAFETY: fcntl on a descriptor just made.
        unsafe {
            let fl = libc::fcntl(fds[0], libc::F_GETFL);
            libc::fcntl(fds[0], libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
        let read_fd = fds[0];
        PIPE.store(fds[1], Ordering::SeqCst);
        std::thread::Builder::new()
            .name("gort-signal".into())
            .spawn(move || loop {
                let mut b = [0u8; 1];
                // SAFETY: reading one byte into a live buffer from our pipe.
                let n = unsafe { libc::read(read_fd, b.as_mut_ptr().cast(), 1) };
                if n == 1 {
                    let sig = i32::from(b[0]);
                    let subs: Vec<Chan<i32>> = registry()
                        .lock()
                        .subs
                        .iter()
                        .filter(|(s, _)| *s == sig)
                        .map(|(_, c)| c.clone())
                        .collect();
                    for c in subs {
                        let _ = c.try_send(sig);
                    }
                } else if n < 0
                    && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    return;
                }
            })
            .unwrap_or_else(|e| panic!("gort::signal: cannot start the watcher thread: {e}"));
    });
}
