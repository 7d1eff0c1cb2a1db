// A body that only uses `?` must name its error once: `Ok::<_, E>(..)`.
use awith::{ResourceExt, resource};

async fn run(rt: &awith::Runtime) {
    let input = resource(|| async { Ok::<_, std::io::Error>("42") }, |_, _| async { Ok(()) });
    let _ = input
        .with(rt, async |text| {
            let n: u8 = text.parse()?;
            Ok(n)
        })
        .await;
}

fn main() {
    let _ = run;
}
