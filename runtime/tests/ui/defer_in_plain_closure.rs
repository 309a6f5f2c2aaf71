// A closure inside a frame is not a frame: its `defer!` must not bind to `f`'s frame.
#[gort::func]
fn f() {
    let cleanup = || {
        defer!(println!("would silently run at the end of f"));
    };
    cleanup();
}

fn main() {
    f();
}
