use greenlet::{Run, greenlet};

struct Worker {
    done: u32,
}

#[greenlet]
impl Run for Worker {
    fn run(&mut self) -> u32 {
        self.done += 1;
        self.done
    }
}

fn main() {
    let g = Worker { done: 0 }.spawn();
    g.join();
}
