//! Choosing a runtime by name, and running a future on it.

use std::fmt;
use std::future::Future;
use std::str::FromStr;

/// A runtime the scenarios run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// tokio, multi-thread.
    Tokio,
    /// async-std (deprecated upstream, still supported).
    AsyncStd,
    /// smol, global executor.
    Smol,
}

impl Choice {
    /// Every runtime this build can run on.
    pub fn enabled() -> Vec<Choice> {
        let mut enabled = Vec::new();
        if cfg!(feature = "tokio") {
            enabled.push(Choice::Tokio);
        }
        if cfg!(feature = "async-std") {
            enabled.push(Choice::AsyncStd);
        }
        if cfg!(feature = "smol") {
            enabled.push(Choice::Smol);
        }
        enabled
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Choice::Tokio => "tokio",
            Choice::AsyncStd => "async-std",
            Choice::Smol => "smol",
        }
    }

    /// Runs `future` to completion on this runtime, from a plain thread.
    ///
    /// # Errors
    ///
    /// When this build does not include the runtime, or it cannot start.
    pub fn block_on<F: Future>(self, future: F) -> Result<F::Output, String> {
        match self {
            #[cfg(feature = "tokio")]
            Choice::Tokio => {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start tokio: {e}"))?;
                Ok(rt.block_on(future))
            }
            #[cfg(feature = "async-std")]
            Choice::AsyncStd => Ok(async_std::task::block_on(future)),
            #[cfg(feature = "smol")]
            Choice::Smol => Ok(smol::block_on(future)),
            #[allow(unreachable_patterns)]
            other => Err(format!(
                "this build does not include {}: enable the feature `{}`",
                other.name(),
                other.name()
            )),
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Choice {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "tokio" => Ok(Choice::Tokio),
            "async-std" | "async_std" => Ok(Choice::AsyncStd),
            "smol" => Ok(Choice::Smol),
            other => Err(format!(
                "unknown runtime {other:?}: choose tokio, async-std or smol"
            )),
        }
    }
}
