//! Go's "pipelines and cancellation" (the Go blog, 2014): a generator, several squarers and a
//! fan-in merge, stopped early by the consumer. Run it with
//! `cargo run -p gort-examples --example pipeline`.
//!
//! The Go program it mirrors (with a `context` where the blog has a `done` channel):
//!
//! ```go
//! func gen(ctx context.Context, nums iter.Seq[int]) <-chan int {
//!     out := make(chan int)
//!     go func() {
//!         defer close(out)
//!         for n := range nums {
//!             select {
//!             case out <- n:
//!             case <-ctx.Done():
//!                 return
//!             }
//!         }
//!     }()
//!     return out
//! }
//!
//! func sq(ctx context.Context, in <-chan int) <-chan int { /* the same, sending n*n */ }
//!
//! func merge(ctx context.Context, cs ...<-chan int) <-chan int {
//!     var wg sync.WaitGroup
//!     out := make(chan int)
//!     output := func(c <-chan int) {
//!         defer wg.Done()
//!         for n := range c {
//!             select {
//!             case out <- n:
//!             case <-ctx.Done():
//!                 return
//!             }
//!         }
//!     }
//!     wg.Add(len(cs))
//!     for _, c := range cs {
//!         go output(c)
//!     }
//!     go func() { wg.Wait(); close(out) }()
//!     return out
//! }
//!
//! func main() {
//!     ctx, cancel := context.WithCancel(context.Background())
//!     in := gen(ctx, naturals)
//!     out := merge(ctx, sq(ctx, in), sq(ctx, in), sq(ctx, in)) // fan out, fan in
//!     for range 5 {
//!         fmt.Println(<-out)
//!     }
//!     cancel() // every stage returns; none is left blocked on a send
//! }
//! ```
//!
//! Each stage here also joins `running`, a `WaitGroup` (`running.add(1)` before it starts,
//! `defer!(running.clone().done())` in it), so that the consumer can wait until every stage
//! has returned; it then checks with `gort::num_goroutine()` that none is left, as a Go test
//! would with `runtime.NumGoroutine()` or goleak.

use std::time::{Duration, Instant};

use gort::context::{self, Context};
use gort::{Chan, WaitGroup};

/// Sends each of `nums` on the channel it returns, until `ctx` is done; then closes it.
pub fn gen<I>(ctx: &Context, running: &WaitGroup, nums: I) -> Chan<u64>
where
    I: IntoIterator<Item = u64>,
    I::IntoIter: Send + 'static,
{
    let out = Chan::new(0);
    let (ctx, o, nums) = (ctx.clone(), out.clone(), nums.into_iter());
    running.add(1);
    let running = running.clone();
    gort::go!(move || {
        defer!(running.clone().done());
        defer!(o.clone().close()); // Go: defer close(out)
        for n in nums {
            gort::select! {
                send(o, n) => {}
                recv(ctx.done()) -> _ => return,
            }
        }
    });
    out
}

/// Squares what arrives on `input` until it is closed or `ctx` is done; then closes its
/// output.
pub fn sq(ctx: &Context, running: &WaitGroup, input: Chan<u64>) -> Chan<u64> {
    let out = Chan::new(0);
    let (ctx, o) = (ctx.clone(), out.clone());
    running.add(1);
    let running = running.clone();
    gort::go!(move || {
        defer!(running.clone().done());
        defer!(o.clone().close());
        for n in &input {
            gort::select! {
                send(o, n * n) => {}
                recv(ctx.done()) -> _ => return,
            }
        }
    });
    out
}

/// Fan-in: forwards every value of `cs` to one channel, closed once every input is closed or
/// `ctx` is done.
pub fn merge(ctx: &Context, running: &WaitGroup, cs: Vec<Chan<u64>>) -> Chan<u64> {
    let out = Chan::new(0);
    let wg = WaitGroup::new();
    wg.add(cs.len() as i32);
    for c in cs {
        let (ctx, o, wg) = (ctx.clone(), out.clone(), wg.clone());
        running.add(1);
        let running = running.clone();
        gort::go!(move || {
            defer!(running.clone().done());
            defer!(wg.clone().done()); // Go: defer wg.Done()
            for n in &c {
                gort::select! {
                    send(o, n) => {}
                    recv(ctx.done()) -> _ => return,
                }
            }
        });
    }
    let o = out.clone();
    running.add(1);
    let running = running.clone();
    gort::go!(move || {
        defer!(running.clone().done());
        defer!(o.clone().close());
        wg.wait();
    });
    out
}

/// The whole pipeline over `1..=n` with `squarers` squarers, read to the end: the sum of the
/// squares (the blog's first program; nothing is cancelled early).
#[gort::func]
pub fn sum_of_squares(n: u64, squarers: usize) -> u64 {
    let (ctx, cancel) = context::with_cancel(&context::background());
    defer!(cancel.cancel()); // Go: defer cancel()
    let running = WaitGroup::new();
    let nums = gen(&ctx, &running, 1..=n);
    let squares = (0..squarers)
        .map(|_| sq(&ctx, &running, nums.clone()))
        .collect();
    let out = merge(&ctx, &running, squares);
    (&out).into_iter().sum()
}

/// What stopping a pipeline short shows.
#[derive(Debug)]
pub struct Stopped {
    /// The values the consumer took before it cancelled (in arrival order).
    pub taken: Vec<u64>,
    /// Goroutines the pipeline started.
    pub started: usize,
    /// Why the stages stopped (`Canceled`).
    pub err: Option<context::Error>,
    /// The merged output channel was closed after the cancel (by the stages' deferred
    /// `close`), with nothing left in it.
    pub out_closed: bool,
    /// Goroutines of the pipeline still alive after every stage returned: 0.
    pub left: usize,
}

/// An endless generator feeding `squarers` squarers and a merge; the consumer takes `take`
/// values, then cancels, and waits for every stage to return.
pub fn stop_short(squarers: usize, take: usize) -> Stopped {
    let base = gort::num_goroutine();
    let (ctx, cancel) = context::with_cancel(&context::background());
    let running = WaitGroup::new();
    let nums = gen(&ctx, &running, 1..);
    let squares = (0..squarers)
        .map(|_| sq(&ctx, &running, nums.clone()))
        .collect();
    let out = merge(&ctx, &running, squares);
    let started = gort::num_goroutine() - base;

    let taken: Vec<u64> = (&out).into_iter().take(take).collect();
    cancel.cancel(); // every stage's select sees ctx.done() and returns
    running.wait();

    Stopped {
        taken,
        started,
        err: ctx.err(),
        out_closed: out.recv().is_none(),
        left: goroutines_left(base),
    }
}

/// How many goroutines beyond `base` are alive, once those that have returned from their
/// function have also finished exiting (given at most a second).
fn goroutines_left(base: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(1);
    while gort::num_goroutine() > base && Instant::now() < deadline {
        gort::yield_now();
    }
    gort::num_goroutine().saturating_sub(base)
}

#[gort::main]
fn main() {
    println!(
        "1..=100 through 3 squarers: sum of squares {}",
        sum_of_squares(100, 3)
    );
    let s = stop_short(3, 5);
    let all_squares = s.taken.iter().all(|&v| {
        let r = (v as f64).sqrt().round() as u64;
        r * r == v
    });
    println!(
        "endless generator, 3 squarers: took {} values (all squares: {all_squares}), then cancelled",
        s.taken.len()
    );
    println!(
        "{} stage goroutines started; after the cancel: {}, output closed: {}, goroutines left: {}",
        s.started,
        s.err.map_or("not cancelled".to_string(), |e| e.to_string()),
        s.out_closed,
        s.left
    );
}
