//! Criterion: spawning goroutines.
use criterion::{criterion_group, criterion_main, Criterion};
fn spawn(c: &mut Criterion) {
    let _ = c;
}
criterion_group!(benches, spawn);
criterion_main!(benches);
