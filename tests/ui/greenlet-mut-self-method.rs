use greenlet::greenlet;

struct Counter {
    n: u32,
}

impl Counter {
    #[greenlet]
    fn bump(&mut self) {
        self.n += 1;
    }
}

fn main() {
    let mut c = Counter { n: 1 };
    c.bump().join();
}
