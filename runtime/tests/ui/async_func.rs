// Frames are for blocking code: goroutines are not async.
#[gort::func]
async fn f() {}

fn main() {}
