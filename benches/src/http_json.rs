//! The HTTP comparison's JSON response (`benches/scripts/http.py --path /json`), the same for
//! gort's and tokio's servers: a payload built per request and serialized with serde_json to
//! 1 KiB or so. Go's server builds the same fields and marshals them with encoding/json
//! (`benches/go/httpserver`).

use serde::Serialize;

#[derive(Serialize)]
struct Item {
    id: u32,
    name: &'static str,
    active: bool,
    score: f64,
    tags: [&'static str; 2],
}

#[derive(Serialize)]
struct Payload {
    message: &'static str,
    total: u32,
    items: Vec<Item>,
}

/// The response body: 16 items, 1,255 bytes.
pub fn body() -> Vec<u8> {
    let items = (0..16)
        .map(|i| Item {
            id: i,
            name: "gopher",
            active: i % 2 == 0,
            score: f64::from(i) * 1.5,
            tags: ["fast", "json"],
        })
        .collect();
    let p = Payload {
        message: "Hello, World!",
        total: 16,
        items,
    };
    serde_json::to_vec(&p).expect("serializes")
}
