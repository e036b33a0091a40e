// Nor can a Lock be shared with another thread by reference (`!Sync`).
use greenlet::lock::Semaphore;

fn main() {
    let sem = Semaphore::new(1);
    std::thread::scope(|s| {
        s.spawn(|| sem.try_acquire());
    });
}
