use greenlet::greenlet;

#[greenlet]
async fn fetch(url: String) -> usize {
    url.len()
}

fn main() {
    let g = fetch("x".into());
    g.join();
}
