use greenlet::greenlet;

#[greenlet(nmae = "worker")]
fn work() -> u8 {
    1
}

fn main() {
    // The function still expands (the bad option is skipped): no error here.
    assert_eq!(work().get().unwrap(), 1);
}
