// A Lock belongs to the hub of its thread: it cannot cross threads.
use greenlet::lock::Lock;

fn main() {
    let lock = Lock::new();
    std::thread::spawn(move || lock.try_acquire());
}
