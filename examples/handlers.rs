//! Request handlers as a Go server writes them: a panic in a handler becomes an error instead
//! of ending the program, the configuration is loaded once on first use, and shared counters
//! sit behind a mutex; a batch of concurrent requests is driven by an errgroup. Run it with
//! `cargo run -p gort-examples --example handlers`.
//!
//! The Go program it mirrors:
//!
//! ```go
//! type Server struct {
//!     config func() *Config          // sync.OnceValue(loadConfig)
//!     mu     sync.Mutex
//!     hits   map[string]int          // guarded by mu
//! }
//!
//! func (s *Server) Handle(req Request) (resp Response, err error) {
//!     defer func() {
//!         if r := recover(); r != nil {
//!             err = &PanicError{req.Path, r} // a 500, not a crash
//!         }
//!     }()
//!     s.mu.Lock()
//!     s.hits[route(req.Path)]++
//!     s.mu.Unlock()
//!     cfg := s.config()
//!     ...
//! }
//!
//! func serveAll(s *Server, paths []string) ([]Outcome, error) {
//!     out := make([]Outcome, len(paths))
//!     var g errgroup.Group
//!     g.SetLimit(4)
//!     for i, p := range paths {
//!         g.Go(func() error {
//!             resp, err := s.Handle(Request{Path: p})
//!             out[i] = Outcome{resp, err}
//!             return err
//!         })
//!     }
//!     return out, g.Wait() // the first error to happen
//! }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gort::errgroup::Group;

/// A request: only its path matters here.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
}

/// A successful response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// A failed request: errors returned as values, and panics turned into values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerError {
    BadRequest(String),
    NotFound(String),
    /// The handler panicked; `message` is the panic's text (Go's for runtime errors).
    Panic {
        path: String,
        message: String,
    },
}

impl HandlerError {
    pub fn status(&self) -> u16 {
        match self {
            HandlerError::BadRequest(_) => 400,
            HandlerError::NotFound(_) => 404,
            HandlerError::Panic { .. } => 500,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandlerError::BadRequest(m) | HandlerError::NotFound(m) => f.write_str(m),
            HandlerError::Panic { path, message } => {
                write!(f, "handler for {path} panicked: {message}")
            }
        }
    }
}

impl std::error::Error for HandlerError {}

/// What the server loads once, on first use.
pub struct Config {
    pub greeting: String,
    pub users: HashMap<u32, String>,
    pub items: Vec<String>,
}

/// The shared state of all handlers.
#[derive(Default)]
pub struct Server {
    /// Go's `sync.OnceValue(loadConfig)`; a `static CONFIG: gort::OnceCell<Config>` works the
    /// same way for a package-level value (`OnceCell::new` is `const`).
    config: gort::OnceCell<Config>,
    /// How many times the configuration was loaded: 1 at most.
    loads: AtomicUsize,
    /// Requests per route. A gort `Mutex`: a contended lock parks the goroutine.
    hits: gort::Mutex<HashMap<String, u64>>,
}

impl Server {
    pub fn new() -> Server {
        Server::default()
    }

    /// The configuration, loaded by the first caller while the others park.
    fn config(&self) -> &Config {
        self.config.get_or_init(|| {
            self.loads.fetch_add(1, Ordering::Relaxed);
            gort::time::sleep(Duration::from_millis(5)); // a slow read: other callers wait
            Config {
                greeting: "Hello".to_string(),
                users: HashMap::from([(1, "ken".to_string()), (2, "rob".to_string())]),
                items: ["gopher", "ferris", "tux"].map(String::from).to_vec(),
            }
        })
    }

    /// How many times the configuration was loaded.
    pub fn config_loads(&self) -> usize {
        self.loads.load(Ordering::Relaxed)
    }

    /// Requests seen per route (the first path segment).
    pub fn hits(&self) -> BTreeMap<String, u64> {
        self.hits
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Serves one request. Whatever the handler does, a panic included, the caller gets a
    /// `Result`: the deferred closure recovers the panic and replaces the result (Go's named
    /// results).
    #[gort::func]
    pub fn handle(&self, req: &Request) -> Result<Response, HandlerError> {
        defer!(|r: &mut gort::Named<Result<Response, HandlerError>>| {
            if let Some(p) = gort::recover() {
                r.set(Err(HandlerError::Panic {
                    path: req.path.clone(),
                    message: p.to_string(),
                }));
            }
        });
        let parts: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        *self.hits.lock().entry(parts[0].to_string()).or_insert(0) += 1;
        let cfg = self.config();
        let ok = |body: String| Ok(Response { status: 200, body });
        match parts[..] {
            ["hello", name] => ok(format!("{}, {name}!", cfg.greeting)),
            ["user", id] => {
                let id: u32 = id
                    .parse()
                    .map_err(|_| HandlerError::BadRequest(format!("bad user id {id:?}")))?;
                match cfg.users.get(&id) {
                    Some(name) => ok(name.clone()),
                    None => Err(HandlerError::NotFound(format!("no user {id}"))),
                }
            }
            ["div", a, b] => {
                let num = |s: &str| {
                    s.parse::<i64>()
                        .map_err(|_| HandlerError::BadRequest(format!("{s:?} is not a number")))
                };
                let (a, b) = (num(a)?, num(b)?);
                ok((a / b).to_string()) // b == 0 panics, as in Go
            }
            ["item", i] => {
                let i: usize = i.parse().unwrap_or(usize::MAX);
                ok(cfg.items[i].clone()) // out of range panics, as in Go
            }
            ["crash"] => {
                // A bug while holding the lock: the guard unlocks as the panic unwinds (gort's
                // Mutex does not poison), so later requests still get the lock.
                let _hits = self.hits.lock();
                panic!("nil map entry for {}", req.path);
            }
            _ => Err(HandlerError::NotFound(format!("no route for {}", req.path))),
        }
    }
}

/// The result of serving a batch.
#[derive(Debug)]
pub struct Report {
    /// One outcome per request, in request order.
    pub outcomes: Vec<(String, Result<Response, HandlerError>)>,
    /// What `g.wait()` returned: the first error to happen, if any request failed.
    pub wait: Result<(), HandlerError>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|(_, r)| r.is_err()).count()
    }
}

/// Serves `paths` concurrently, at most `limit` at a time, through an errgroup.
pub fn serve_all(server: &Arc<Server>, paths: &[&str], limit: usize) -> Report {
    let outcomes = Arc::new(gort::Mutex::new(vec![None; paths.len()]));
    let g = Group::<HandlerError>::new();
    g.set_limit(Some(limit));
    for (i, path) in paths.iter().enumerate() {
        let (server, outcomes) = (server.clone(), outcomes.clone());
        let req = Request {
            path: path.to_string(),
        };
        g.go(move || {
            let res = server.handle(&req);
            let err = res.as_ref().err().cloned();
            outcomes.lock()[i] = Some((req.path, res));
            match err {
                Some(e) => Err(e),
                None => Ok(()),
            }
        });
    }
    let wait = g.wait();
    let outcomes = std::mem::take(&mut *outcomes.lock());
    Report {
        outcomes: outcomes
            .into_iter()
            .map(|o| o.expect("every request was served"))
            .collect(),
        wait,
    }
}

/// The demo batch: successes, errors returned as values, and three kinds of panic.
pub const PATHS: [&str; 12] = [
    "/hello/gopher",
    "/user/1",
    "/user/99",
    "/user/abc",
    "/div/84/2",
    "/div/1/0",
    "/item/1",
    "/item/7",
    "/crash",
    "/hello/ferris",
    "/nowhere",
    "/user/2",
];

#[gort::main]
fn main() {
    let server = Arc::new(Server::new());
    let report = serve_all(&server, &PATHS, 4);
    for (path, res) in &report.outcomes {
        match res {
            Ok(r) => println!("GET {path:<14} {} {}", r.status, r.body),
            Err(e) => println!("GET {path:<14} {} {e}", e.status()),
        }
    }
    println!(
        "errgroup: {} of {} requests failed; g.wait() returned {}",
        report.failed(),
        report.outcomes.len(),
        if report.wait.is_err() {
            "the first of them"
        } else {
            "Ok"
        }
    );
    println!(
        "config loaded {} time(s); hits per route: {:?}",
        server.config_loads(),
        server.hits()
    );
}
