// A WaitQueue belongs to the hub of its thread: it cannot cross threads.
use greenlet::waiter::WaitQueue;

fn main() {
    let q = WaitQueue::<u32>::new();
    std::thread::spawn(move || drop(q));
}
