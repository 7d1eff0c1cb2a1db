#!/usr/bin/env bash
# Packages every publishable crate as crates.io would get it, and tests the
# packages: what a user downloads must build, and the facade's doctests (its
# README included) must pass outside this workspace.
#
# 1. `cargo package` of the five publishable crates at once: cargo (≥ 1.90)
#    packages them in dependency order and resolves their dependencies on
#    each other through a local registry of the packages just made, so none
#    needs to be on crates.io; it then builds each unpacked package
#    (`Verifying`).
# 2. Each `.crate` is unpacked outside the workspace and tested there on its
#    own, all features on, its siblings patched to their unpacked packages:
#    unit tests, integration tests and doctests — for the facade, the README's
#    examples against `awith` itself.
#
# Also checks that every other workspace member says `publish = false`.
# Usage: ci/package.sh [--allow-dirty]   (cargo package refuses a dirty tree
# unless told; CI runs on a clean checkout).
set -euo pipefail
cd "$(dirname "$0")/.."

# In dependency order (the facade last).
crates=(awith-core awith-tokio awith-async-std awith-smol awith)
# Workspace members that are not published.
unpublished=(tests/conformance tests/scenarios benches)

started=$SECONDS
for member in "${unpublished[@]}"; do
    if ! grep -qE '^publish = false' "$member/Cargo.toml"; then
        echo "ci/package.sh: $member/Cargo.toml must say publish = false" >&2
        exit 1
    fi
done
members=$(sed -n '/^members = \[/,/^\]/p' Cargo.toml | grep -c '"')
if [[ $members -ne $((${#crates[@]} + ${#unpublished[@]})) ]]; then
    echo "ci/package.sh: the workspace has $members members; list each new one here" >&2
    exit 1
fi

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
package_args=()
for crate in "${crates[@]}"; do package_args+=(-p "$crate"); done
cargo package --locked "${package_args[@]}" "$@"

version=$(sed -nE 's/^version = "([^"]+)"/\1/p' Cargo.toml | head -n 1)
unpacked="$(mktemp -d)"
trap 'rm -rf "$unpacked"' EXIT
patches=()
for crate in "${crates[@]}"; do
    tar -xzf "$target_dir/package/$crate-$version.crate" -C "$unpacked"
    patches+=(--config "patch.crates-io.$crate.path=\"$unpacked/$crate-$version\"")
done

# Outside the workspace: a target directory of its own, kept between runs
# (the registry dependencies are built once).
export CARGO_TARGET_DIR="$target_dir/package-tests"
for crate in "${crates[@]}"; do
    echo "=== the packaged $crate"
    (cd "$unpacked/$crate-$version" && cargo test --all-features "${patches[@]}")
done
echo "ci/package.sh: ${#crates[@]} crates packaged; their packages' tests and doctests pass ($((SECONDS - started)) s)"
