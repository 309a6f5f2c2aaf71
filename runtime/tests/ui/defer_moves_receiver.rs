// Go's `defer close(out)` written as `defer!(out.close())` moves `out` (Rust evaluates the
// receiver by moving it); the compiler's help is the documented spelling,
// `defer!(out.clone().close())`.
#[gort::func]
fn produce() {
    let out: gort::Chan<u32> = gort::Chan::new(1);
    defer!(out.close());
    out.send(1);
}

fn main() {
    produce();
}
