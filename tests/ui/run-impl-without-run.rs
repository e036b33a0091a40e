use greenlet::{Run, greenlet};

struct Worker {
    jobs: u32,
}

#[greenlet]
impl Run for Worker {
    type Output = u32;
}

fn main() {
    // The helpers still exist (with a stub `run`): no error here.
    let g = Worker { jobs: 1 }.spawn();
    let _ = g.jobs;
}
