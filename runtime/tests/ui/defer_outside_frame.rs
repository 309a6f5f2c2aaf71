// `defer!` in a plain function: there is no frame to run it.
fn not_a_frame() {
    gort::defer!(println!("never registered"));
}

fn main() {
    not_a_frame();
}
