use greenlet::greenlet;

#[greenlet]
fn show(value: impl std::fmt::Display + 'static) -> String {
    value.to_string()
}

fn main() {
    let g = show(5);
    g.join();
}
