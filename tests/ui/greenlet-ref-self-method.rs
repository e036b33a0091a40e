use greenlet::greenlet;

struct Counter {
    n: u32,
}

impl Counter {
    #[greenlet]
    fn report(&self) -> u32 {
        self.n
    }
}

fn main() {
    let c = Counter { n: 1 };
    c.report().join();
}
