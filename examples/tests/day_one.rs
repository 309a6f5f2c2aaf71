//! A Go programmer's day-one programs, run for real: the worker pool, the cancellable pipeline
//! and the request handlers. Each example's own source is compiled in here, and the tests
//! assert on what its core function returns.

#[path = "../worker_pool.rs"]
#[allow(dead_code)]
mod worker_pool;

#[path = "../pipeline.rs"]
#[allow(dead_code)]
mod pipeline;

#[path = "../handlers.rs"]
#[allow(dead_code)]
mod handlers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::context;

/// Runs `f` as main on a runtime with `procs` processors.
fn run_on<T: Send + 'static>(procs: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    gort::Builder::new().procs(procs).run(f)
}

/// Goroutines beyond `base` still alive, once those that have returned have finished exiting
/// (given at most a second).
fn goroutines_left(base: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(1);
    while gort::num_goroutine() > base && Instant::now() < deadline {
        gort::yield_now();
    }
    gort::num_goroutine().saturating_sub(base)
}

// ---- worker_pool ----

#[test]
fn pool_finishes_every_job_and_reports_the_first_error() {
    for procs in [1, 4] {
        let (s, left) = run_on(procs, || {
            let base = gort::num_goroutine();
            let s = worker_pool::run_pool(
                &context::background(),
                worker_pool::quick_jobs(),
                4,
                Duration::from_secs(5),
            );
            (s, goroutines_left(base))
        });
        let jobs = worker_pool::quick_jobs();
        assert_eq!(s.results.len(), jobs.len());
        for (job, got) in jobs.iter().zip(&s.results) {
            let got = got.as_ref().expect("every job finished");
            match job.input.parse::<u64>() {
                Ok(n) => assert_eq!(got, &Ok(n * n), "job {}", job.id),
                Err(_) => assert_eq!(got.as_ref().unwrap_err().job, job.id),
            }
        }
        assert_eq!((s.done(), s.failed(), s.sum()), (12, 2, 259));
        let first = s.first_error.as_ref().expect("two jobs failed");
        assert_eq!(first.job, 3, "the first failed job in job order: {first}");
        assert_eq!(
            first.to_string(),
            "job 3: \"one\" is not a number (invalid digit found in string)"
        );
        assert_eq!(s.err, None, "finished before the timeout");
        assert_eq!(left, 0, "the workers, feeder and closer have all exited");
    }
}

#[test]
fn pool_gives_up_at_the_timeout() {
    for procs in [1, 4] {
        let (s, elapsed, left) = run_on(procs, || {
            let base = gort::num_goroutine();
            let start = Instant::now();
            let s = worker_pool::run_pool(
                &context::background(),
                worker_pool::jobs_with_a_slow_one(), // job 3 takes a minute
                4,
                Duration::from_millis(200),
            );
            (s, start.elapsed(), goroutines_left(base))
        });
        assert_eq!(s.err, Some(context::Error::DeadlineExceeded));
        assert_eq!(s.unfinished(), [3]);
        for (id, got) in s.results.iter().enumerate().filter(|&(id, _)| id != 3) {
            let n = id as u64 * 10;
            assert_eq!(got, &Some(Ok(n * n)), "job {id}");
        }
        assert_eq!(s.first_error, None, "a timed-out job is not a job error");
        assert!(
            elapsed >= Duration::from_millis(200) && elapsed < Duration::from_secs(2),
            "returned {elapsed:?} after start"
        );
        assert_eq!(left, 0, "the slow job's worker returned too");
    }
}

#[test]
fn pool_stops_when_its_parent_is_cancelled() {
    let (s, left) = run_on(2, || {
        let base = gort::num_goroutine();
        let (parent, cancel) = context::with_cancel(&context::background());
        cancel.cancel();
        let s = worker_pool::run_pool(
            &parent,
            worker_pool::quick_jobs(),
            4,
            Duration::from_secs(5),
        );
        (s, goroutines_left(base))
    });
    assert_eq!(s.err, Some(context::Error::Canceled));
    assert_eq!(s.done(), 0, "no result is reported once the pool gave up");
    assert_eq!(left, 0);
}

// ---- pipeline ----

#[test]
fn pipeline_read_to_the_end() {
    let sums = run_on(2, || {
        (
            pipeline::sum_of_squares(100, 3),
            pipeline::sum_of_squares(10, 1),
            pipeline::sum_of_squares(0, 4),
        )
    });
    assert_eq!(sums, (338_350, 385, 0));
}

#[test]
fn pipeline_cancelled_early_stops_every_stage() {
    for procs in [1, 4] {
        let runs = run_on(procs, || {
            let base = gort::num_goroutine();
            let runs: Vec<_> = (0..20).map(|_| pipeline::stop_short(3, 5)).collect();
            assert_eq!(goroutines_left(base), 0);
            runs
        });
        for s in runs {
            assert_eq!(s.taken.len(), 5);
            let mut roots: Vec<u64> = s
                .taken
                .iter()
                .map(|&v| {
                    let r = (v as f64).sqrt().round() as u64;
                    assert_eq!(r * r, v, "{v} is a square");
                    r
                })
                .collect();
            roots.sort_unstable();
            roots.dedup();
            assert_eq!(roots.len(), 5, "five different numbers: {:?}", s.taken);
            assert_eq!(
                s.started, 8,
                "gen, 3 squarers, 3 forwarders and merge's closer"
            );
            assert_eq!(s.err, Some(context::Error::Canceled));
            assert!(
                s.out_closed,
                "the merged output was closed by its deferred close"
            );
            assert_eq!(s.left, 0, "no stage goroutine is left");
        }
    }
}

// ---- handlers ----

#[test]
fn handler_panics_become_errors() {
    let (report, loads, hits) = run_on(4, || {
        let server = Arc::new(handlers::Server::new());
        let report = handlers::serve_all(&server, &handlers::PATHS, 4);
        (report, server.config_loads(), server.hits())
    });
    use handlers::HandlerError::{BadRequest, NotFound, Panic};
    let ok = |body: &str| {
        Ok(handlers::Response {
            status: 200,
            body: body.to_string(),
        })
    };
    let panic = |path: &str, message: &str| {
        Err(Panic {
            path: path.to_string(),
            message: message.to_string(),
        })
    };
    let want = [
        ok("Hello, gopher!"),
        ok("ken"),
        Err(NotFound("no user 99".into())),
        Err(BadRequest("bad user id \"abc\"".into())),
        ok("42"),
        panic("/div/1/0", "runtime error: integer divide by zero"),
        ok("ferris"),
        panic(
            "/item/7",
            "runtime error: index out of range [7] with length 3",
        ),
        panic("/crash", "nil map entry for /crash"),
        ok("Hello, ferris!"),
        Err(NotFound("no route for /nowhere".into())),
        ok("rob"),
    ];
    assert_eq!(report.outcomes.len(), want.len());
    for ((path, got), (want_path, want)) in
        report.outcomes.iter().zip(handlers::PATHS.iter().zip(want))
    {
        assert_eq!(path, want_path);
        assert_eq!(got, &want, "{path}");
    }
    assert_eq!(report.failed(), 6);
    // g.wait() returns the first error to happen: which one depends on the schedule.
    let first = report.wait.expect_err("requests failed");
    assert!(
        report
            .outcomes
            .iter()
            .any(|(_, r)| r.as_ref().err() == Some(&first)),
        "{first} is one of the failures"
    );
    assert_eq!(loads, 1, "the config is loaded once");
    let want_hits: BTreeMap<String, u64> = [
        ("crash", 1),
        ("div", 2),
        ("hello", 2),
        ("item", 2),
        ("nowhere", 1),
        ("user", 4),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .into();
    assert_eq!(
        hits, want_hits,
        "every request counted, and /crash did not poison the lock"
    );
}

#[test]
fn config_is_loaded_once_by_concurrent_requests() {
    for procs in [1, 4] {
        let (report, loads, hits) = run_on(procs, || {
            let server = Arc::new(handlers::Server::new());
            let paths: Vec<String> = (0..64).map(|i| format!("/hello/g{i}")).collect();
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            // 16 at once: they all ask for the config while the first caller loads it.
            let report = handlers::serve_all(&server, &paths, 16);
            (report, server.config_loads(), server.hits())
        });
        assert_eq!(report.wait, Ok(()));
        assert_eq!(report.failed(), 0);
        for (i, (_, r)) in report.outcomes.iter().enumerate() {
            assert_eq!(r.as_ref().unwrap().body, format!("Hello, g{i}!"));
        }
        assert_eq!(loads, 1);
        assert_eq!(hits.get("hello"), Some(&64));
    }
}

#[test]
fn a_server_keeps_serving_after_a_panic() {
    let (first, second, hits) = run_on(2, || {
        let server = Arc::new(handlers::Server::new());
        let first = handlers::serve_all(&server, &["/crash", "/crash"], 2);
        let second = handlers::serve_all(&server, &["/hello/again"], 1);
        (first, second, server.hits())
    });
    assert_eq!(first.failed(), 2);
    assert!(matches!(
        first.wait,
        Err(handlers::HandlerError::Panic { .. })
    ));
    assert_eq!(second.wait, Ok(()));
    assert_eq!(hits.get("crash"), Some(&2));
    assert_eq!(hits.get("hello"), Some(&1));
}
