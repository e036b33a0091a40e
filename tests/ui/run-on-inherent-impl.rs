use greenlet::greenlet;

struct Worker;

#[greenlet]
impl Worker {
    fn run(&self) -> u32 {
        1
    }
}

fn main() {
    let _ = Worker.run();
}
