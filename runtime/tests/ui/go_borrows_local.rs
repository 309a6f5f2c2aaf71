// A goroutine may outlive the frame that started it: its function cannot borrow locals.
fn main() {
    gort::run(|| {
        let v = vec![1];
        gort::go!(|| println!("{v:?}"));
    });
}
