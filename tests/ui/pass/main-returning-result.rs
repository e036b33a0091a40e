//! `#[greenlet::main]` returning a `Result` and using `?`.
#![deny(warnings)]

use greenlet::spawn;

#[greenlet::main]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = spawn(|| "7".parse::<u32>()).get()??;
    assert_eq!(n, 7);
    if n == 7 {
        return Ok(());
    }
    Err("unreachable".into())
}
