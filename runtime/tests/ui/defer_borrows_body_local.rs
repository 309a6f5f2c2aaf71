// A deferred call runs after the body's locals are gone, so it cannot borrow them.
fn print_len(s: &str) {
    println!("{}", s.len());
}

#[gort::func]
fn f() {
    let s = String::from("local");
    defer!(print_len(&s));
}

fn main() {
    f();
}
