//! A Go programmer's first worker pool: a jobs channel, a results channel, jobs that fail
//! with errors returned as values, and an overall timeout. Run it with
//! `cargo run -p gort-examples --example worker_pool`.
//!
//! The Go program it mirrors:
//!
//! ```go
//! func worker(ctx context.Context, jobs <-chan Job, results chan<- Result) {
//!     for j := range jobs {
//!         v, err := process(ctx, j)
//!         if ctx.Err() != nil {
//!             return // the pool gave up: drop the job
//!         }
//!         select {
//!         case results <- Result{j.ID, v, err}:
//!         case <-ctx.Done():
//!             return
//!         }
//!     }
//! }
//!
//! func runPool(ctx context.Context, jobs []Job, workers int, timeout time.Duration) Summary {
//!     ctx, cancel := context.WithTimeout(ctx, timeout)
//!     defer cancel()
//!     jobCh, results := make(chan Job), make(chan Result)
//!     var wg sync.WaitGroup
//!     for range workers {
//!         wg.Go(func() { worker(ctx, jobCh, results) })
//!     }
//!     go func() { // the feeder
//!         defer close(jobCh)
//!         for _, j := range jobs {
//!             select {
//!             case jobCh <- j:
//!             case <-ctx.Done():
//!                 return
//!             }
//!         }
//!     }()
//!     go func() { wg.Wait(); close(results) }()
//!     for r := range results { // ends when every worker has returned
//!         s.Results[r.ID] = r
//!     }
//!     s.Err = ctx.Err() // nil, or context.DeadlineExceeded
//!     return s
//! }
//! ```
//!
//! Every goroutine returns once the timeout passes: the feeder and the workers select on
//! `ctx.done()`, so the results channel closes and the collecting loop ends.

use std::fmt;
use std::time::Duration;

use gort::context::{self, Context};
use gort::Chan;

/// One unit of work: parse `input` as a number and square it, after `cost` of "work".
#[derive(Clone, Debug)]
pub struct Job {
    pub id: usize,
    pub input: String,
    pub cost: Duration,
}

impl Job {
    pub fn new(id: usize, input: &str) -> Job {
        Job {
            id,
            input: input.to_string(),
            cost: Duration::ZERO,
        }
    }

    /// The same job, taking `cost` to finish.
    pub fn taking(self, cost: Duration) -> Job {
        Job { cost, ..self }
    }
}

/// A failed job (Go's `fmt.Errorf("job %d: ...", id)`): an error value, not a panic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobError {
    pub job: usize,
    pub reason: String,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job {}: {}", self.job, self.reason)
    }
}

impl std::error::Error for JobError {}

/// What a worker sends back (Go's `Result{ID, Value, Err}`).
struct Outcome {
    job: usize,
    result: Result<u64, JobError>,
}

/// Does one job: waits out its cost (or the context), then parses and squares.
fn process(ctx: &Context, job: &Job) -> Result<u64, JobError> {
    let fail = |reason: String| JobError {
        job: job.id,
        reason,
    };
    if !job.cost.is_zero() {
        gort::select! {
            recv(gort::time::after(job.cost)) -> _ => {}
            recv(ctx.done()) -> _ => {
                return Err(fail(ctx.err().expect("done").to_string()));
            }
        }
    }
    let n: u64 = job
        .input
        .parse()
        .map_err(|e| fail(format!("{:?} is not a number ({e})", job.input)))?;
    n.checked_mul(n)
        .ok_or_else(|| fail(format!("{n} squared overflows")))
}

fn worker(ctx: Context, jobs: Chan<Job>, results: Chan<Outcome>) {
    for job in &jobs {
        let result = process(&ctx, &job);
        if ctx.err().is_some() {
            return; // the pool gave up: drop the job
        }
        gort::select! {
            send(results, Outcome { job: job.id, result }) => {}
            recv(ctx.done()) -> _ => return,
        }
    }
}

/// What a run of the pool gives back.
#[derive(Debug)]
pub struct Summary {
    pub workers: usize,
    pub timeout: Duration,
    /// By job id: `None` for a job that did not finish before the timeout.
    pub results: Vec<Option<Result<u64, JobError>>>,
    /// The first failed job, in job order.
    pub first_error: Option<JobError>,
    /// Why the pool stopped early: `DeadlineExceeded` after the timeout, `Canceled` if the
    /// parent context was cancelled; `None` when every job finished in time.
    pub err: Option<context::Error>,
}

impl Summary {
    pub fn done(&self) -> usize {
        self.results.iter().flatten().count()
    }

    pub fn failed(&self) -> usize {
        self.results.iter().flatten().filter(|r| r.is_err()).count()
    }

    /// The sum of the successful jobs' squares.
    pub fn sum(&self) -> u64 {
        self.results.iter().flatten().flatten().sum()
    }

    /// The ids of the jobs that did not finish.
    pub fn unfinished(&self) -> Vec<usize> {
        (0..self.results.len())
            .filter(|&i| self.results[i].is_none())
            .collect()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.results.len();
        write!(
            f,
            "{n} jobs, {} workers, {:?} timeout: {} done ({} ok, sum of squares {}; {} failed)",
            self.workers,
            self.timeout,
            self.done(),
            self.done() - self.failed(),
            self.sum(),
            self.failed(),
        )?;
        if let Some(e) = &self.first_error {
            write!(f, "\n  first error: {e}")?;
        }
        if let Some(e) = self.err {
            write!(
                f,
                "\n  stopped early: {e}; unfinished jobs {:?}",
                self.unfinished()
            )?;
        }
        Ok(())
    }
}

/// Runs `jobs` on `workers` goroutines, giving up after `timeout` (or when `parent` is
/// cancelled). Every goroutine it starts has returned, or is about to, when it returns.
#[gort::func]
pub fn run_pool(parent: &Context, jobs: Vec<Job>, workers: usize, timeout: Duration) -> Summary {
    let (ctx, cancel) = context::with_timeout(parent, timeout);
    defer!(cancel.cancel()); // Go's defer cancel(): stops the timer if we finish in time

    let n = jobs.len();
    let (job_ch, results) = (Chan::new(0), Chan::new(0));
    let wg = gort::WaitGroup::new();
    for _ in 0..workers {
        let (ctx, jobs, results) = (ctx.clone(), job_ch.clone(), results.clone());
        wg.go(move || worker(ctx, jobs, results));
    }
    let feeder_ctx = ctx.clone();
    gort::go!(move || {
        defer!(job_ch.clone().close());
        for job in jobs {
            gort::select! {
                send(job_ch, job) => {}
                recv(feeder_ctx.done()) -> _ => return,
            }
        }
    });
    let r = results.clone();
    gort::go!(move || {
        wg.wait();
        r.close();
    });

    let mut summary = Summary {
        workers,
        timeout,
        results: vec![None; n],
        first_error: None,
        err: None,
    };
    for Outcome { job, result } in &results {
        summary.results[job] = Some(result);
    }
    summary.first_error = summary
        .results
        .iter()
        .flatten()
        .find_map(|r| r.clone().err());
    summary.err = ctx.err();
    summary
}

/// Twelve quick jobs, two of which fail.
pub fn quick_jobs() -> Vec<Job> {
    [
        "3", "1", "4", "one", "5", "9", "2", "-6", "5", "3", "5", "8",
    ]
    .iter()
    .enumerate()
    .map(|(id, input)| Job::new(id, input).taking(Duration::from_millis(1)))
    .collect()
}

/// Eight quick jobs, one of which (job 3) would take a minute.
pub fn jobs_with_a_slow_one() -> Vec<Job> {
    (0..8)
        .map(|id| {
            let job = Job::new(id, &(id * 10).to_string());
            if id == 3 {
                job.taking(Duration::from_secs(60))
            } else {
                job
            }
        })
        .collect()
}

#[gort::main]
fn main() {
    let bg = context::background();
    println!("{}", run_pool(&bg, quick_jobs(), 4, Duration::from_secs(5)));
    println!(
        "{}",
        run_pool(&bg, jobs_with_a_slow_one(), 4, Duration::from_millis(50))
    );
}
