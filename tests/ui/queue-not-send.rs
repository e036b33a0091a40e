// A Queue (and Channel) belongs to its thread's hub: it cannot be sent to
// another thread.
use greenlet::queue::Queue;

fn main() {
    greenlet::run(|| {
        let q = Queue::<u32>::new();
        std::thread::spawn(move || q.put(1));
    });
}
