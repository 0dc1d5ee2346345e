"""Compile the benchmark's C helpers on first use and cache the binaries.

The binaries are built with the system's ``cc`` into a cache directory keyed
by a hash of the source and the flags, so editing a source file rebuilds it
and nothing is ever written into the source tree.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile

C_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c")
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11"]


class BuildError(Exception):
    pass


def cache_dir():
    root = os.environ.get("TURBOLOOP_BENCH_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        root = os.path.join(xdg, "turboloop-bench")
    try:
        os.makedirs(root, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root)
        probe.close()
    except OSError:
        root = os.path.join(tempfile.gettempdir(), f"turboloop-bench-{os.getuid()}")
        os.makedirs(root, exist_ok=True)
    return root


def build(name):
    """Return the path of the compiled bench/c/NAME.c, building it if needed."""
    src = os.path.join(C_DIR, name + ".c")
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise BuildError(f"no C compiler ({cc}) on PATH")
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read() + " ".join([cc] + CFLAGS).encode()).hexdigest()[:16]
    out = os.path.join(cache_dir(), f"{name}-{digest}")
    if os.path.exists(out):
        return out
    # Build under a temporary name and rename, so two runs building at once
    # never see a half-written binary.
    tmp = f"{out}.{os.getpid()}.tmp"
    proc = subprocess.run([cc, *CFLAGS, "-o", tmp, src],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"compiling {src} failed:\n{proc.stderr}")
    os.replace(tmp, out)
    # Binaries of earlier versions of the source are of no further use.
    prefix = f"{name}-"
    for old in os.listdir(os.path.dirname(out)):
        if old.startswith(prefix) and old != os.path.basename(out) and not old.endswith(".tmp"):
            try:
                os.unlink(os.path.join(os.path.dirname(out), old))
            except OSError:
                pass
    return out
