#!/bin/sh
# Run the conformance harness with the Python 3.14 / 3.15 of a Debian sid
# chroot (python3.1x plus libpython3.1x-testsuite installed in it).
#
#   tests/conformance/sid.sh 3.14 [--build] [harness options...]
#
# Mounts /proc, /dev/pts (the pty tests need it) and a bind mount of this
# repository inside the chroot for the duration of the run, and undoes only
# the mounts it made.  --build first
# builds the C extension for that Python inside the chroot (needs
# python3-setuptools there).  The chroot is $TL_SID_ROOT, default
# /var/tmp/tl-sid.
set -eu

version=${1:?usage: sid.sh 3.14|3.15 [--build] [harness options...]}
shift
build=0
if [ "${1:-}" = "--build" ]; then
    build=1
    shift
fi

root=${TL_SID_ROOT:-/var/tmp/tl-sid}
repo=$(cd "$(dirname "$0")/../.." && pwd)
# A mount point of our own, so a run never collides with other users of the
# chroot's usual /src.
mnt=/conformance-src.$$

mounted_proc=0
mounted_pts=0
cleanup() {
    if mountpoint -q "$root$mnt" 2>/dev/null; then
        umount "$root$mnt"
    fi
    rmdir "$root$mnt" 2>/dev/null || true
    if [ "$mounted_pts" = 1 ]; then
        umount "$root/dev/pts"
    fi
    if [ "$mounted_proc" = 1 ]; then
        umount "$root/proc"
    fi
}
trap cleanup EXIT INT TERM

if ! mountpoint -q "$root/proc"; then
    mount -t proc proc "$root/proc"
    mounted_proc=1
fi
if ! mountpoint -q "$root/dev/pts"; then
    mkdir -p "$root/dev/pts"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
    mounted_pts=1
fi
mkdir -p "$root$mnt"
mount --bind "$repo" "$root$mnt"

if [ "$build" = 1 ]; then
    chroot "$root" sh -c "cd $mnt && python$version setup.py build_ext --inplace -q"
fi

# The chroot may have no git: name the revision under test from here
# (read-only queries).
revision=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || true)
if [ -n "$revision" ] && [ -n "$(git -C "$repo" --no-optional-locks status --porcelain -- csrc python setup.py 2>/dev/null)" ]; then
    revision="$revision+local changes"
fi

# The JSON file, if any, is written relative to the repository.
set +e
chroot "$root" env -u PYTHONHOME PYTHONPATH="$mnt/python" TURBOLOOP_CONFORMANCE_REVISION="$revision" sh -c 'cd "$0" && exec "$@"' \
    "$mnt" "python$version" -m tests.conformance "$@"
status=$?
exit $status
