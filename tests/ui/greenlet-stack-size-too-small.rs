use greenlet::greenlet;

#[greenlet(stack_size = 64)]
fn work() -> u8 {
    1
}

fn main() {
    work().join();
}
