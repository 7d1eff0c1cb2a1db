//! awith's scopes side by side with the hand-written code they replace.
//!
//! `cargo bench -p awith-benches --bench scope` compares the groups in time;
//! `ci/bench.sh` adds the instruction counts. See the `awith_benches` docs for
//! the command line.
#![forbid(unsafe_code)]
// Printing the results is this bench's job.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

fn main() -> ExitCode {
    awith_benches::main(&[scope::GROUP])
}

/// One scope, the simplest case: what `with` costs over writing the three
/// steps by hand.
mod scope {
    use std::hint::black_box;
    use std::io;

    use awith::{ResourceExt, ScopeError, resource};
    use awith_benches::{Group, Runner};

    /// Variant indices, in [`GROUP`]'s order.
    const HAND_WRITTEN: usize = 0;
    const AWITH: usize = 1;

    pub(crate) const GROUP: Group = Group {
        name: "scope",
        about: "acquire (1 yield) -> body (+1 on &mut u64) -> release (1 yield), \
                tokio current-thread",
        variants: &["hand-written", "awith"],
        setup,
    };

    /// A tokio current-thread runtime and the awith runtime on it.
    struct Scope {
        tokio: tokio::runtime::Runtime,
        rt: awith::Runtime,
    }

    fn setup() -> Box<dyn Runner> {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio current-thread runtime can be built");
        let rt = tokio
            .block_on(async { awith::tokio::runtime() })
            .expect("awith::tokio::runtime() works inside a tokio runtime with timers");
        Box::new(Scope { tokio, rt })
    }

    // The resource logic both variants share.

    async fn acquire() -> io::Result<u64> {
        tokio::task::yield_now().await;
        Ok(black_box(0))
    }

    async fn body(value: &mut u64) -> io::Result<u64> {
        *value = black_box(*value) + 1;
        Ok(*value)
    }

    async fn release(value: u64) -> io::Result<()> {
        tokio::task::yield_now().await;
        black_box(value);
        Ok(())
    }

    /// (a) The three steps by hand: nothing is released on a panic or a
    /// cancellation, and the release never learns how the body ended.
    async fn hand_written() -> io::Result<u64> {
        let mut value = acquire().await?;
        let output = body(&mut value).await;
        release(value).await?;
        output
    }

    /// (b) The same steps as an awith scope.
    async fn with_awith(rt: &awith::Runtime) -> Result<u64, ScopeError<io::Error, io::Error>> {
        resource(acquire, |value, _exit| release(value))
            .with(rt, async |value| body(value).await)
            .await
    }

    impl Runner for Scope {
        fn run(&mut self, variant: usize, iterations: u64) {
            let rt = &self.rt;
            match variant {
                HAND_WRITTEN => self.tokio.block_on(async {
                    for _ in 0..iterations {
                        let output = hand_written().await;
                        black_box(output.expect("the hand-written scope does not fail"));
                    }
                }),
                AWITH => self.tokio.block_on(async {
                    for _ in 0..iterations {
                        let output = with_awith(rt).await;
                        black_box(output.expect("the awith scope does not fail"));
                    }
                }),
                _ => unreachable!("`scope` has two variants"),
            }
        }
    }
}
