// A goroutine's function must be `Send` and `'static`: the error names that requirement
// (`goroutine_must_be_send_and_static`) at the user's `go!`, not a gort-internal function.
use std::rc::Rc;

fn main() {
    gort::run(|| {
        let r = Rc::new(1);
        gort::go!(move || println!("{r}"));
    });
}
