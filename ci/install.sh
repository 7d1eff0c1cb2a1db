#!/usr/bin/env bash
# Installs what the tests need on a fresh machine. Idempotent: it only
# installs what is missing. Run by ci/test.sh; a person can run it too:
#   ci/install.sh redis-server:redis-server
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif have sudo; then sudo "$@"; else
        echo "ci/install.sh: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

apt_updated=no
apt_install() {
    if [ "$apt_updated" = no ]; then
        as_root apt-get update -qq
        apt_updated=yes
    fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@"
}

# The Rust components the checks use.
if have rustup; then
    for component in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$component" ||
            rustup component add "$component"
    done
fi
have cargo || { echo "ci/install.sh: cargo is missing: install Rust (rustup.rs)" >&2; exit 1; }

# Packages, by the command that shows they are there: each argument is
# COMMAND:DEBIAN-PACKAGE (e.g. `redis-server:redis-server`, which
# awith-redis's tests need; they start their own servers on free loopback
# ports and never use a system Redis service).
missing=()
for pair in "$@"; do
    command="${pair%%:*}"
    package="${pair#*:}"
    have "$command" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    if have apt-get; then
        apt_install "${missing[@]}"
    else
        echo "ci/install.sh: please install: ${missing[*]}" >&2
        exit 1
    fi
fi
