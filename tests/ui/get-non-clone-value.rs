// `Greenlet::get` clones the value: a value that is not `Clone` is taken
// with `take()` instead, and the error says so.
fn main() {
    greenlet::run(|| {
        let g = greenlet::spawn(|| std::fs::read("/nope"));
        let _ = g.get();
    });
}
