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
# ports and never use a system Redis service). The argument `postgresql`
# stands for PostgreSQL's server programs (initdb, postgres), which
# awith-sqlx's tests and benches run in temporary directories of their own:
# Debian keeps them off PATH, in /usr/lib/postgresql/N/bin.
missing=()
postgresql=no
for pair in "$@"; do
    if [ "$pair" = postgresql ]; then
        postgresql=yes
        continue
    fi
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

have_postgresql() {
    have initdb && have postgres && return 0
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
if [ "$postgresql" = yes ] && ! have_postgresql; then
    if have apt-get; then
        # The tests start servers of their own: no system cluster, no
        # service on port 5432. (The package also makes the `postgres`
        # user, which runs the tests' servers when they run as root.)
        as_root mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
        apt_install postgresql
    else
        echo "ci/install.sh: please install PostgreSQL's server (initdb, postgres)" >&2
        exit 1
    fi
fi
if [ "$postgresql" = yes ] && [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    echo "ci/install.sh: running as root, the PostgreSQL tests need a 'postgres' user (the postgresql package makes it)" >&2
    exit 1
fi
