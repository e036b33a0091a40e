use greenlet::greenlet;

#[greenlet]
struct Worker {
    jobs: u32,
}

fn main() {
    let _ = Worker { jobs: 1 }.jobs;
}
