#[greenlet::test]
#[test]
fn twice() {
    assert!(true);
}

fn main() {}
