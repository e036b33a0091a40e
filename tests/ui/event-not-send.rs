// An Event belongs to the hub of its thread: it cannot cross threads.
use greenlet::event::Event;

fn main() {
    let e = Event::new();
    std::thread::spawn(move || e.set());
}
