#!/usr/bin/env bash
# Build the Debian bookworm base image (python3.11 + venv + CA certificates) that the Dockerfiles take as
# BASE_IMAGE where no registry is reachable (no `docker pull python:3.11-slim`).
# The debootstrap tarball is cached under build/images/ (gitignored), so only the first run pays ~1.5 min.
#   usage: scripts/docker-base-image.sh [IMAGE_TAG]
set -euo pipefail
tag="${1:-crackseg-base:bookworm-slim}"
cache_dir="${CRACKSEG_IMAGE_CACHE:-build/images}"
tarball="$cache_dir/bookworm-minbase-python-slim.tar"
docker="${DOCKER:-docker}"

if "$docker" image inspect "$tag" >/dev/null 2>&1; then
  echo "base image $tag already present"
  exit 0
fi
mkdir -p "$cache_dir"
if [[ ! -s "$tarball" ]]; then
  root="$(mktemp -d "${TMPDIR:-/tmp}/crackseg-rootfs.XXXXXX")"
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm into $root (cached afterwards in $tarball)"
  # python3-venv gives `python3 -m venv` (ensurepip); nothing else beyond minbase is needed: every Python
  # dependency comes as a wheel, so no compiler ever enters an image.
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,tini \
    bookworm "$root" http://deb.debian.org/debian >"$cache_dir/debootstrap.log" 2>&1 \
    || { tail -20 "$cache_dir/debootstrap.log"; exit 1; }
  # Drop what no container ever reads (the images never run apt, and Python needs no message catalogues):
  # the downloaded .deb files debootstrap leaves in apt's cache (46 MB), apt lists, docs, man pages and the
  # translations under /usr/share/locale (33 MB). C.UTF-8 lives in glibc, not there.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/debconf/*-old "$root"/var/log/*.log
  tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi
"$docker" import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  "$tarball" "$tag" >/dev/null
echo "imported $tag from $tarball"
