use greenlet::spawn;

fn main() {
    let g = spawn(|| 1);
    // A greenlet belongs to its thread's hub: its handle cannot move.
    std::thread::spawn(move || g.join());
}
