#!/usr/bin/env bash
# Packages every publishable crate as crates.io would get it, and tests the
# packages: what a user downloads must build, and the facade's doctests (its
# README included) must pass outside this workspace.
#
# 1. `cargo package` of the nine publishable crates at once: cargo (≥ 1.90)
#    packages them in dependency order and resolves their dependencies on
#    each other through a local registry of the packages just made, so none
#    needs to be on crates.io; it then builds each unpacked package
#    (`Verifying`).
# 2. Each `.crate` is unpacked (where cargo verified it, a place Cargo keeps
#    out of this workspace) and tested there on its own, all features on, its
#    siblings patched to their unpacked packages:
#    unit tests, integration tests and doctests — for the facade, the README's
#    examples against `awith` itself.
#
# Also checks that every other workspace member says `publish = false`.
# The packages are made from the working tree as it is, committed or not
# (`--allow-dirty`): this checks packaging, it publishes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# In dependency order (the facade last).
crates=(awith-core awith-tokio awith-async-std awith-smol awith-test-macros awith-test awith awith-redis awith-sqlx)
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

target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
package_args=()
for crate in "${crates[@]}"; do package_args+=(-p "$crate"); done
version=$(sed -nE 's/^version = "([^"]+)"/\1/p' Cargo.toml | head -n 1)
# Cargo verifies the packages against a temporary registry of them, and
# unpacks each into $CARGO_HOME/registry/src/<that registry's hash>/ — once:
# an unpacking left there by an earlier run of this script (same directory,
# same hash, same version) would be built instead of today's package. None of
# these crates is on crates.io yet, so every unpacked copy of them is such a
# leftover.
for crate in "${crates[@]}"; do
    rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$crate-$version"
done
cargo package --locked --allow-dirty "${package_args[@]}"

# Unpacked where `cargo package` verifies them (target/package/<crate>-<version>,
# which Cargo treats as outside this workspace), afresh from the .crate files.
for crate in "${crates[@]}"; do
    rm -rf "$target_dir/package/$crate-$version"
    tar -xzf "$target_dir/package/$crate-$version.crate" -C "$target_dir/package"
done

# A dev-dependency by path only, without a version, is left out of the
# package (cargo drops it: that is how awith-core, whose doctests use the
# facade, can be published before the facade that depends on it). Puts each
# back into the unpacked manifest, on the sibling's package, so that the
# package's tests and doctests run as in the workspace; prints the names.
restore_path_dev_deps() {
    local crate=$1 dir=$2 line name rest header='\n[dev-dependencies]\n'
    local source="crates/$crate/Cargo.toml"
    while IFS= read -r line; do
        [[ $line =~ ^([A-Za-z0-9_-]+)\ =\ \{\ path\ =\ \"\.\./([A-Za-z0-9_-]+)\"(.*)$ ]] || continue
        name=${BASH_REMATCH[1]}
        rest=${BASH_REMATCH[3]}
        if [[ $name != "${BASH_REMATCH[2]}" || $rest == *version* ]]; then
            echo "ci/package.sh: $source: cannot restore the dev-dependency line: $line" >&2
            exit 1
        fi
        entry=$(printf '%s = { path = "%s"%s' "$name" "$target_dir/package/$name-$version" "$rest")
        if grep -qE '^\[dev-dependencies\]' "$dir/Cargo.toml"; then
            # Cargo writes an empty table when it dropped every dev-dependency:
            # the entry goes into it.
            sed -i "/^\[dev-dependencies\]\$/a $entry" "$dir/Cargo.toml"
        else
            printf "$header"'%s\n' "$entry" >>"$dir/Cargo.toml"
        fi
        header=''
        echo "$name"
    done < <(sed -n '/^\[dev-dependencies\]/,/^\[/p' "$source")
}

for crate in "${crates[@]}"; do
    dir="$target_dir/package/$crate-$version"
    restored=$(restore_path_dev_deps "$crate" "$dir")
    # Its siblings from their packages, not from crates.io: those it depends
    # on, and, when a sibling was restored above, those that sibling depends
    # on (this crate among them: the cycle resolves to this package).
    manifests=("$dir/Cargo.toml")
    for name in $restored; do
        manifests+=("$target_dir/package/$name-$version/Cargo.toml")
    done
    # ... and, transitively, the siblings those depend on (awith-test needs
    # awith-test-macros, though the facade names only awith-test).
    patched=()
    grew=1
    while [[ $grew -eq 1 ]]; do
        grew=0
        for sibling in "${crates[@]}"; do
            [[ " ${patched[*]} " == *" $sibling "* ]] && continue
            if [[ -n $restored && $sibling == "$crate" ]] ||
                grep -qE "^\[(dev-)?dependencies\.$sibling\]" "${manifests[@]}"; then
                patched+=("$sibling")
                manifests+=("$target_dir/package/$sibling-$version/Cargo.toml")
                grew=1
            fi
        done
    done
    patches=()
    for sibling in "${patched[@]}"; do
        patches+=(--config "patch.crates-io.$sibling.path=\"$target_dir/package/$sibling-$version\"")
    done
    echo "=== the packaged $crate"
    (cd "$dir" && CARGO_TARGET_DIR="$target_dir" cargo test --all-features "${patches[@]}")
done
echo "ci/package.sh: ${#crates[@]} crates packaged; their packages' tests and doctests pass ($((SECONDS - started)) s)"
