// A Group (and a Pool) holds greenlet handles: it cannot be sent to
// another thread.
use greenlet::pool::{Group, Pool};

fn assert_send<T: Send>(_: &T) {}

fn main() {
    let group = Group::new();
    assert_send(&group);
    let pool = Pool::new(2);
    assert_send(&pool);
}
