#[greenlet::main]
async fn main() {
    println!("hello");
}
