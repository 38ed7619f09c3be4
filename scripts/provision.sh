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
  # The CLI tests upload files with curl -F, as a user does.
  command -v curl >/dev/null || apt_install curl ca-certificates
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

# Bugsink: a self-hosted Sentry-compatible server (SQLite, one process) on
# 127.0.0.1:$BUGSINK_PORT, for the error-reporting tests. Exports
# BUGSINK_URL (base URL), BUGSINK_DSN (the "notes-api" project's DSN, for the
# sentry crate) and BUGSINK_TOKEN (a full-access Bearer token for its REST
# API under $BUGSINK_URL/api/canonical/0/). Events are digested inside the
# ingest request (SNAPPEA TASK_ALWAYS_EAGER, from the "local" template), so
# no snappea worker runs. Log: $BUGSINK_DIR/server.log. Web UI: admin/admin.
BUGSINK_VERSION=2.6.2
BUGSINK_PORT=${BUGSINK_PORT:-8765}
BUGSINK_VENV="$HOME/.cache/notes-api/bugsink-venv"
BUGSINK_DIR="$HOME/.cache/notes-api/bugsink"
BUGSINK_URL="http://127.0.0.1:$BUGSINK_PORT"
# schemathesis (PyPI), pinned: the spec-conformance run of the test command.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV=${SCHEMATHESIS_VENV:-$HOME/.cache/notes-api/schemathesis-venv}

# pip_venv VENV PACKAGE VERSION: PACKAGE==VERSION in its own virtualenv.
pip_venv() {
  local venv=$1 package=$2 version=$3
  if ! "$venv/bin/python" -m pip show "$package" 2>/dev/null | grep -qx "Version: $version"; then
    echo "provision: pip install $package $version (under a minute, once)"
    if [ ! -x "$venv/bin/pip" ]; then
      python3 -m venv --clear "$venv" 2>/dev/null ||
        { apt_install python3-venv && python3 -m venv --clear "$venv"; } || return 1
    fi
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "$package==$version" || return 1
  fi
}

# Headless Chromium (Debian's) and the pinned npm packages that drive it
# for the admin UI's browser tests: playwright-core and axe-core, installed
# once into a cache directory (never `npx playwright install`).
BROWSER_NPM_PINS=(playwright-core@1.65.1 axe-core@4.14.1)
BROWSER_TOOLS=${BROWSER_TOOLS:-$HOME/.cache/notes-api/browser-tools}

ensure_browser() {
  # Debian's chromium. Ubuntu's package is a snap wrapper that cannot run
  # here; its CI runners carry Google Chrome, which playwright-core drives
  # the same way.
  if [ -z "${CHROMIUM:-}" ]; then
    if grep -qi '^ID=ubuntu' /etc/os-release 2>/dev/null && command -v google-chrome >/dev/null; then
      CHROMIUM=$(command -v google-chrome)
    else
      apt_install chromium
      CHROMIUM=/usr/bin/chromium
    fi
  fi
  npm_dir "$BROWSER_TOOLS" "${BROWSER_NPM_PINS[@]}" || return 1
  export NODE_PATH="$BROWSER_TOOLS/node_modules" CHROMIUM
}

# npm_dir DIR PACKAGE@VERSION...: exactly these packages in DIR/node_modules,
# installed once (a stamp of the pins marks the directory as done).
npm_dir() {
  local dir=$1
  shift
  command -v npm >/dev/null || apt_install nodejs npm
  local stamp
  stamp=$(printf '%s\n' "$@" | sha256sum | cut -c1-16)
  if [ ! -f "$dir/.stamp-$stamp" ]; then
    echo "provision: npm install $* (once)"
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && printf '{"name":"notes-api-tools","private":true}\n' >package.json &&
      npm install --no-audit --no-fund --silent --save-exact "$@") || return 1
    touch "$dir/.stamp-$stamp"
  fi
}

ensure_schemathesis() {
  pip_venv "$SCHEMATHESIS_VENV" schemathesis "$SCHEMATHESIS_VERSION" || return 1
  export SCHEMATHESIS="$SCHEMATHESIS_VENV/bin/schemathesis"
}

# The client generators the client-generation test runs against the served
# spec (scripts/clients.sh), pinned: openapi-python-client (PyPI; its venv
# also has httpx and attrs, which the generated client imports) and
# openapi-typescript with the TypeScript compiler that checks its output.
OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
CLIENTS_VENV=${CLIENTS_VENV:-$HOME/.cache/notes-api/clients-venv}
# eventsource 3: the last line that runs on Debian 12's Node 18.
# standardwebhooks: the Standard Webhooks reference library for Node, the
# same version as the Python one the API tests verify with.
CLIENTS_NPM_PINS=(openapi-typescript@7.13.0 typescript@5.9.3 eventsource@3.0.7 standardwebhooks@1.3.0)
CLIENTS_NPM=${CLIENTS_NPM:-$HOME/.cache/notes-api/client-tools}

ensure_clients() {
  pip_venv "$CLIENTS_VENV" openapi-python-client "$OPENAPI_PYTHON_CLIENT_VERSION" || return 1
  npm_dir "$CLIENTS_NPM" "${CLIENTS_NPM_PINS[@]}" || return 1
  export CLIENTS_VENV CLIENTS_NPM
}

# The webhook tests' receiver verifies deliveries with the Standard Webhooks
# reference library (PyPI `standardwebhooks`), pinned.
STANDARDWEBHOOKS_VERSION=1.3.0
WEBHOOK_VENV=${WEBHOOK_VENV:-$HOME/.cache/notes-api/webhook-venv}

ensure_webhook_receiver() {
  pip_venv "$WEBHOOK_VENV" standardwebhooks "$STANDARDWEBHOOKS_VERSION" || return 1
  export WEBHOOK_PYTHON="$WEBHOOK_VENV/bin/python"
}

bugsink_manage() { (cd "$BUGSINK_DIR" && DJANGO_SETTINGS_MODULE=bugsink_conf "$BUGSINK_VENV/bin/bugsink-manage" "$@"); }
bugsink_ok() { curl -fsS -o /dev/null --max-time 2 "$BUGSINK_URL/health/ready" 2>/dev/null; }

ensure_bugsink() {
  command -v curl >/dev/null || apt_install curl ca-certificates
  pip_venv "$BUGSINK_VENV" bugsink "$BUGSINK_VERSION" || return 1
  mkdir -p "$BUGSINK_DIR"
  if [ ! -f "$BUGSINK_DIR/bugsink_conf.py" ]; then
    echo "provision: configuring Bugsink in $BUGSINK_DIR"
    rm -f "$BUGSINK_DIR/bugsink_conf.py.new"
    "$BUGSINK_VENV/bin/bugsink-create-conf" --template=local --host=127.0.0.1 --port="$BUGSINK_PORT" \
      --output-file="$BUGSINK_DIR/bugsink_conf.py.new" >/dev/null || return 1
    cat >>"$BUGSINK_DIR/bugsink_conf.py.new" <<CONF

# notes-api: everything under this directory, and no traffic off the machine.
DATABASES["default"]["NAME"] = "$BUGSINK_DIR/db.sqlite3"
DATABASES["snappea"]["NAME"] = "$BUGSINK_DIR/snappea.sqlite3"
BUGSINK["INGEST_STORE_BASE_DIR"] = "$BUGSINK_DIR/ingestion"
BUGSINK["PHONEHOME"] = False
CONF
    mv "$BUGSINK_DIR/bugsink_conf.py.new" "$BUGSINK_DIR/bugsink_conf.py"
    rm -f "$BUGSINK_DIR/env"
  fi
  if ! bugsink_ok; then
    echo "provision: starting Bugsink on $BUGSINK_URL"
    bugsink_manage migrate -v 0 && bugsink_manage migrate snappea --database=snappea -v 0 || return 1
    (cd "$BUGSINK_DIR" && DJANGO_SETTINGS_MODULE=bugsink_conf setsid "$BUGSINK_VENV/bin/gunicorn" \
      --bind "127.0.0.1:$BUGSINK_PORT" --workers 2 --no-control-socket --pid "$BUGSINK_DIR/gunicorn.pid" \
      --access-logfile - --error-logfile - --capture-output bugsink.wsgi \
      </dev/null >>"$BUGSINK_DIR/server.log" 2>&1 &)
    for _ in $(seq 1 100); do bugsink_ok && break; sleep 0.2; done
    bugsink_ok || { echo "provision: Bugsink does not answer on $BUGSINK_URL (see $BUGSINK_DIR/server.log)" >&2; return 1; }
  fi
  if [ ! -s "$BUGSINK_DIR/env" ]; then
    # Superuser admin/admin, team and project "notes-api", one API token: created once, printed as shell assignments.
    bugsink_manage shell --no-imports -v 0 -c '
from django.contrib.auth import get_user_model
from bsmain.models import AuthToken
from teams.models import Team
from projects.models import Project
User = get_user_model()
if not User.objects.filter(username="admin").exists():
    User.objects.create_superuser(username="admin", email="admin@example.org", password="admin")
team, _ = Team.objects.get_or_create(name="notes-api")
project = Project.objects.filter(slug="notes-api").first() or Project.objects.create(team=team, name="notes-api", slug="notes-api")
token = AuthToken.objects.filter(description="notes-api tests").first() or AuthToken.create_full_access(description="notes-api tests")
print("BUGSINK_DSN=%s" % project.dsn)
print("BUGSINK_PROJECT=%d" % project.id)
print("BUGSINK_TOKEN=%s" % token.token)
' | grep '^BUGSINK_[A-Z]*=[^ ]*$' >"$BUGSINK_DIR/env.new" && mv "$BUGSINK_DIR/env.new" "$BUGSINK_DIR/env" || return 1
  fi
  # shellcheck disable=SC1091
  . "$BUGSINK_DIR/env"
  export BUGSINK_URL BUGSINK_DSN BUGSINK_PROJECT BUGSINK_TOKEN
}
