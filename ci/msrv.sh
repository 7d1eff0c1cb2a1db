#!/usr/bin/env bash
# Checks that the workspace builds on its minimum supported Rust version (the
# `rust-version` of Cargo.toml), every target and feature. Not part of
# ci/test.sh: it needs a second toolchain, which rustup downloads here
# (CI machines have one toolchain and may not reach rustup's servers).
set -euo pipefail
cd "$(dirname "$0")/.."

msrv=$(sed -nE 's/^rust-version = "([0-9.]+)"/\1/p' Cargo.toml | head -n 1)
if [[ -z $msrv ]]; then
    echo "ci/msrv.sh: no rust-version in Cargo.toml" >&2
    exit 1
fi
rustup toolchain install "$msrv" --profile minimal
# A target directory of its own: artefacts of two compilers do not mix.
# awith-redis declares its own rust-version (1.88: redis 1.x needs it), and
# so do awith-scenarios and awith-benches (unpublished: the tour and the lock
# bench use it), so they are left out here; the crates the core's MSRV
# promises are checked.
CARGO_TARGET_DIR=target/msrv cargo "+$msrv" check --locked --workspace --exclude awith-redis --exclude awith-sqlx --exclude awith-scenarios --exclude awith-benches \
    --all-targets --all-features
echo "ci/msrv.sh: the workspace (but awith-redis: Rust 1.88, awith-sqlx: Rust 1.94, and the tour and benches that use them) builds on Rust $msrv"
