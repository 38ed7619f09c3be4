#!/usr/bin/env bash
# Idempotent provisioning for a fresh Debian machine: installs and starts only
# what is missing. Sourced by scripts/test.sh; safe to run again and again.

APT_UPDATED=${APT_UPDATED:-0}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: installs the packages that are not installed yet.
apt_install() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$APT_UPDATED" -eq 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  echo "provision: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# The Rust toolchain's lint and format components.
ensure_rust() {
  command -v cargo >/dev/null || { echo "provision: cargo is required (rustup)" >&2; return 1; }
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
  fi
}

# A PostgreSQL server on 127.0.0.1:5432 that accepts postgres/postgres.
# Prints the admin URL the tests use.
PG_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
pg_ok() { PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
  if ! command -v psql >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
  fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "provision: starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  fi
  if ! pg_ok; then
    # A fresh install asks for a password on TCP: give postgres a test one.
    as_root runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'postgres'"
  fi
  pg_ok || { echo "provision: PostgreSQL does not accept $PG_URL" >&2; return 1; }
}

# Redis for the queue tests (TEST_QUEUE=redis), on 127.0.0.1:6379.
REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    echo "provision: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no
    for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done
  fi
  redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG || { echo "provision: Redis does not answer on 6379" >&2; return 1; }
}

# s3s-fs: a real S3 server over HTTP on a local directory, for the S3 tests.
S3S_FS_VERSION=0.14.1
ensure_s3s_fs() {
  if command -v s3s-fs >/dev/null && s3s-fs --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then
    return 0
  fi
  echo "provision: cargo install s3s-fs $S3S_FS_VERSION (a few minutes, once)"
  cargo install --locked s3s-fs --version "$S3S_FS_VERSION" --features binary
}
