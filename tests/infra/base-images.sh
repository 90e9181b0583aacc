#!/usr/bin/env bash
# Build the local test base images (no registry is reachable, so nothing is pulled):
#   mad-test/busybox:latest   static busybox, every applet linked, /bin/bash runs its sh  (~1 s)
#   mad-test/python:bookworm  debootstrap minbase + python3                              (~40 s, cached)
#   mad-test/torch:bookworm   the python image + Debian's python3-torch (CPU, gloo) and a
#                             torchrun wrapper (~3 min, rootfs cached)
# Usage: base-images.sh [busybox|python|torch]...   (default: busybox python). Idempotent and
# flock-protected.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUSYBOX_IMAGE=mad-test/busybox:latest
PYTHON_IMAGE=mad-test/python:bookworm
TORCH_IMAGE=mad-test/torch:bookworm
CACHE_DIR=${MAD_TEST_CACHE:-/var/cache/mad-test}
DEFAULT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

build_busybox() {
    have_image "$BUSYBOX_IMAGE" && return 0
    local rootfs
    rootfs=$(mktemp -d /tmp/mad-busybox.XXXXXX)
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp}
    chmod 1777 "$rootfs/tmp"
    install -m 0755 /bin/busybox "$rootfs/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list-full); do
        [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
    done
    # Real MAD scripts say `bash script.sh`; busybox's ash runs simple bash scripts. A symlink
    # would not do: Debian's busybox has no applet called "bash" and rejects that argv[0].
    rm -f "$rootfs/bin/bash"
    printf '#!/bin/sh\nexec /bin/sh "$@"\n' >"$rootfs/bin/bash"
    chmod 0755 "$rootfs/bin/bash"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    tar -C "$rootfs" -c . | docker import -c "ENV PATH=$DEFAULT_PATH" -c 'CMD ["sh"]' - "$BUSYBOX_IMAGE" >/dev/null
    rm -rf "$rootfs"
}

# One retry: a dropped connection to the Debian mirror should not fail a CI run.
debootstrap_with_retry() {
    local rootfs attempt
    for attempt in 1 2; do
        rootfs=$(mktemp -d /var/tmp/mad-python-rootfs.XXXXXX)
        if debootstrap --variant=minbase --include=python3 bookworm "$rootfs" http://deb.debian.org/debian \
            >"$CACHE_DIR/debootstrap.log" 2>&1; then
            echo "$rootfs"
            return 0
        fi
        rm -rf "$rootfs"
    done
    echo "debootstrap failed twice; see $CACHE_DIR/debootstrap.log" >&2
    return 1
}

python_rootfs_tar() {
    local tarball=$CACHE_DIR/python-bookworm.tar
    if [ ! -s "$tarball" ]; then
        command -v debootstrap >/dev/null || { echo "debootstrap is not installed" >&2; return 3; }
        mkdir -p "$CACHE_DIR"
        local rootfs
        rootfs=$(debootstrap_with_retry) || return 1
        pack_rootfs "$rootfs" "$tarball"
    fi
    echo "$tarball"
}

# A rootfs without apt's caches, as a tarball (written whole or not at all); the rootfs goes.
pack_rootfs() {
    rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*
    tar -C "$1" -c . >"$2.tmp" && mv "$2.tmp" "$2"
    rm -rf "$1"
}

# import_python_image IMAGE ROOTFS_TAR_FUNCTION: a python3 image from a cached rootfs tarball.
import_python_image() {
    have_image "$1" && return 0
    local tarball
    tarball=$("$2")
    docker import -c "ENV PATH=$DEFAULT_PATH" -c 'CMD ["python3"]' "$tarball" "$1" >/dev/null
}

build_python() {
    import_python_image "$PYTHON_IMAGE" python_rootfs_tar
}

# Debian's torch 1.13 `torchrun` crashes under Python 3.11 on its own defaults `--redirects 0
# --tee 0` (3.11's enum iteration skips the zero flag), so the wrapper puts `--redirects 1 --tee 1`
# (workers' stdout to a file and the console) first: a caller's own --redirects/--tee, later on the
# command line, still wins.
TORCHRUN_WRAPPER='#!/bin/sh
exec python3 -m torch.distributed.run --redirects 1 --tee 1 "$@"
'

torch_rootfs_tar() {
    local tarball=$CACHE_DIR/torch-bookworm.tar
    if [ ! -s "$tarball" ]; then
        local rootfs
        mkdir -p "$CACHE_DIR"
        rootfs=$(mktemp -d /var/tmp/mad-torch-rootfs.XXXXXX)
        tar -C "$rootfs" -xf "$(python_rootfs_tar)"
        cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
        if ! chroot "$rootfs" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive
            for attempt in 1 2; do
                apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-torch && exit 0
            done; exit 1' >"$CACHE_DIR/torch-apt.log" 2>&1; then
            rm -rf "$rootfs"
            echo "apt-get install python3-torch failed; see $CACHE_DIR/torch-apt.log" >&2
            return 1
        fi
        printf '%s' "$TORCHRUN_WRAPPER" >"$rootfs/usr/local/bin/torchrun"
        chmod 0755 "$rootfs/usr/local/bin/torchrun"
        : >"$rootfs/etc/resolv.conf"
        pack_rootfs "$rootfs" "$tarball"
    fi
    echo "$tarball"
}

build_torch() {
    import_python_image "$TORCH_IMAGE" torch_rootfs_tar
}

bash "$here/start-docker.sh"
exec 9>/tmp/mad-test-images.lock
flock 9
[ $# -gt 0 ] || set -- busybox python
for which in "$@"; do
    case $which in
        busybox) build_busybox ;;
        python) build_python ;;
        torch) build_torch ;;
        *) echo "unknown image '$which' (busybox|python|torch)" >&2; exit 2 ;;
    esac
done
