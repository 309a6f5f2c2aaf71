//! A tour of what gort can do so far. Run with `cargo run --release --example tour`.

fn main() {
    println!("tour placeholder");
}
