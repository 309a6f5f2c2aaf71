// defer! takes a call or a closure of zero or one argument.
#[gort::func]
fn path_only() {
    let cleanup = || ();
    defer!(cleanup);
}

#[gort::func]
fn two_arguments() {
    defer!(|a, b| drop((a, b)));
}

fn main() {
    path_only();
    two_arguments();
}
