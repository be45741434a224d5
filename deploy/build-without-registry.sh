#!/usr/bin/env bash
# Build the image from ./Dockerfile on a Debian machine that reaches Debian's packages and PyPI
# but no container registry (see docs/deployment.md), then smoke-test what was built.
#
# The Dockerfile's base, python:3.11-slim-bookworm, cannot be pulled there, so a stand-in of
# that name is made from Debian bookworm's own packages (debootstrap: Python 3.11 from Debian in
# /usr/bin instead of the official image's build in /usr/local/bin) and the unchanged
# Dockerfile is built on it with podman. Containers cannot be run on such a sandbox (crun
# cannot set its rlimits there), so the smoke test runs the image's filesystem with chroot as
# its user, with its environment, working directory, entrypoint and HEALTHCHECK command.
#
# Needs root. Usage: deploy/build-without-registry.sh [TAG]   (default pynenc-sidecar:local)
set -euo pipefail
TAG="${1:-pynenc-sidecar:local}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="docker.io/library/python:3.11-slim-bookworm"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need podman podman
need debootstrap debootstrap

if ! podman image exists "$BASE"; then
  echo "==> making a stand-in for $BASE from Debian bookworm's packages"
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    bookworm "$WORK/rootfs" http://deb.debian.org/debian >/dev/null
  rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
  tar -C "$WORK/rootfs" -c . | podman import --change 'CMD ["python3"]' - "$BASE" >/dev/null
fi

# A machine whose HTTPS goes through an intercepting proxy trusts it in its own CA bundle and
# pip.conf: lend both to the build's RUN steps (mounts, so they stay out of the image).
mounts=()
[ -f /etc/ssl/certs/ca-certificates.crt ] && mounts+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
[ -f /etc/pip.conf ] && mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)

echo "==> podman build -t $TAG (docker format: OCI images drop HEALTHCHECK)"
podman build --format docker --isolation=chroot --pull=never "${mounts[@]}" -t "$TAG" "$ROOT"

echo "==> smoke test: the image's filesystem, as its user, with its environment"
rootfs="$(podman image mount "$TAG")"
volume="$WORK/data"
user="$(podman image inspect "$TAG" --format '{{.Config.User}}')"
mkdir -p "$volume" && chown "$user" "$volume"
mount -t proc proc "$rootfs/proc" && mount --bind /dev "$rootfs/dev" && mount --bind "$volume" "$rootfs/data"
cleanup_mounts() { umount "$rootfs/data" "$rootfs/dev" "$rootfs/proc" 2>/dev/null || true; podman image unmount "$TAG" >/dev/null; }
trap 'cleanup_mounts; rm -rf "$WORK"' EXIT
mapfile -t env < <(podman image inspect "$TAG" --format '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
workdir="$(podman image inspect "$TAG" --format '{{.Config.WorkingDir}}')"
run() { exec chroot --userspec="$user" "$rootfs" /usr/bin/env -i "${env[@]}" sh -c "cd $workdir && exec $*"; }
(run pynenc-sidecar serve) >"$WORK/serve.log" 2>&1 &
server=$!  # the server itself: every step above execs the next
ok=""
for _ in $(seq 1 40); do
  if (run pynenc-sidecar health) >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.5
done
kill -TERM "$server"; wait "$server" || true
cat "$WORK/serve.log"
[ -n "$ok" ] && [ -f "$volume/pynenc-sidecar.db" ] && grep -q '"stopped"' "$WORK/serve.log" \
  || { echo "smoke test FAILED"; exit 1; }
echo "==> $TAG built; it served as user $user with its store on the /data volume, and its HEALTHCHECK passed"
