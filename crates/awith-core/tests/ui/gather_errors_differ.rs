// `gather!` takes futures of different types, but one error type: the
// message names the future whose error differs.
use awith::gather;

async fn name() -> Result<String, std::io::Error> {
    Ok("ada".into())
}

async fn age() -> Result<u8, std::fmt::Error> {
    Ok(36)
}

async fn run() {
    let _ = gather!(name(), age()).await;
}

fn main() {
    let _ = run;
}
