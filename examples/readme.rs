//! The README's first example, kept compiling (`cargo test --workspace` builds the examples).

use std::sync::Arc;

fn worker(id: u64, results: Arc<gort::Mutex<Vec<u64>>>, wg: gort::WaitGroup) {
    results.lock().push(id * id); // a contended lock parks the goroutine, not the thread
    wg.done();
}

#[gort::main]
fn main() {
    let results = Arc::new(gort::Mutex::new(Vec::new()));
    let wg = gort::WaitGroup::new();
    for id in 0..10 {
        wg.add(1);
        gort::go!(worker(id, results.clone(), wg.clone())); // arguments evaluated here, as in Go
    }
    wg.wait(); // parks this goroutine, not the thread
    println!("{} squares, from {} goroutines", results.lock().len(), 10);
}
