// A Channel belongs to its thread's hub: it cannot be shared with another
// thread.
use greenlet::queue::Channel;

fn assert_sync<T: Sync>(_: &T) {}

fn main() {
    let ch = Channel::<u32>::new();
    assert_sync(&ch);
}
