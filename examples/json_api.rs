//! A JSON API on `gort::http`, as a Go programmer would write it with net/http: routing on
//! method and path with a `ServeMux` (Go 1.22's patterns), a shared store behind a `gort::Mutex`, handlers that may block, a header
//! timeout, and a graceful shutdown on SIGINT or SIGTERM (`gort::signal` cancels a
//! `gort::context`, which drains the server).
//!
//! ```text
//! cargo run --example json_api -- 127.0.0.1:8080
//! curl -d 'buy milk' http://127.0.0.1:8080/todos
//! curl http://127.0.0.1:8080/todos
//! curl http://127.0.0.1:8080/todos/1
//! ```

use std::sync::Arc;
use std::time::Duration;

use gort::http::{header, path_value, Body, Request, Response, ServeMux, Server, StatusCode};

/// The store: todo items in order; an item's id is its position plus one.
#[derive(Default)]
pub struct Store {
    todos: gort::Mutex<Vec<String>>,
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json(code: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn item(id: usize, text: &str) -> String {
    format!("{{\"id\":{id},\"text\":{}}}", json_str(text))
}

/// The API's routes (Go 1.22: an `http.ServeMux` with a `HandleFunc` per pattern).
pub fn handler(store: Arc<Store>) -> ServeMux {
    let mut mux = ServeMux::new();
    let s = store.clone();
    mux.handle_func("GET /todos", move |_req: Request| {
        let todos = s.todos.lock();
        let items: Vec<String> = todos
            .iter()
            .enumerate()
            .map(|(i, t)| item(i + 1, t))
            .collect();
        json(StatusCode::OK, format!("[{}]", items.join(",")))
    });
    let s = store.clone();
    mux.handle_func("POST /todos", move |req: Request| {
        // The body is read here, on the request's goroutine, as it arrives.
        let text = match req.into_body().text() {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            Ok(_) => return json(StatusCode::BAD_REQUEST, "{\"error\":\"empty todo\"}".into()),
            Err(e) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    format!("{{\"error\":{}}}", json_str(&e.to_string())),
                )
            }
        };
        let mut todos = s.todos.lock();
        todos.push(text);
        let id = todos.len();
        json(StatusCode::CREATED, item(id, &todos[id - 1]))
    });
    // Go: r.PathValue("id")
    mux.handle_func("GET /todos/{id}", move |req: Request| {
        let todos = store.todos.lock();
        match path_value(&req, "id").and_then(|id| id.parse::<usize>().ok()) {
            Some(id) if id >= 1 && id <= todos.len() => {
                json(StatusCode::OK, item(id, &todos[id - 1]))
            }
            _ => json(StatusCode::NOT_FOUND, "{\"error\":\"no such todo\"}".into()),
        }
    });
    mux
}

#[gort::main]
fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let ln = gort::net::TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("json_api: cannot listen on {addr}: {e}");
        std::process::exit(1)
    });
    eprintln!(
        "json_api: listening on http://{}/",
        ln.local_addr().unwrap()
    );

    // Go: signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
    let (ctx, cancel) = gort::context::with_cancel(&gort::context::background());
    let sigs: gort::Chan<i32> = gort::Chan::new(1);
    gort::signal::notify(&sigs, &[gort::signal::SIGINT, gort::signal::SIGTERM]);
    gort::go!(move || {
        if let Some(s) = sigs.recv() {
            eprintln!("json_api: signal {s}, shutting down");
            cancel.cancel();
        }
    });

    let server = Server::new(handler(Arc::new(Store::default())))
        .read_header_timeout(Duration::from_secs(5));
    match server.serve_until(ln, &ctx) {
        Ok(()) => eprintln!("json_api: drained, bye"),
        Err(e) => eprintln!("json_api: {e}"),
    }
}
