use greenlet::greenlet;

#[greenlet]
fn first<'a>(items: Vec<&'a str>) -> usize {
    items.len()
}

fn main() {
    first(vec!["a"]).join();
}
