use greenlet::greenlet;

#[greenlet(start = "soon")]
fn work() -> u8 {
    1
}

fn main() {
    work().join();
}
