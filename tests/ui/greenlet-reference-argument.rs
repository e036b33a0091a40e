use greenlet::greenlet;

#[greenlet]
fn count(text: &str) -> usize {
    text.len()
}

fn main() {
    let owned = String::from("abc");
    let g = count(&owned);
    g.join();
}
