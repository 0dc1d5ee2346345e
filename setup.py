"""Build script for turboloop's C core.

Environment switches:

  TURBOLOOP_DEBUG=1      -O0 -g, assertions on (NDEBUG undefined)
  TURBOLOOP_SANITIZE=1   debug build plus AddressSanitizer and UBSan; run the
                         interpreter with LD_PRELOAD=$(gcc -print-file-name=libasan.so)
  TURBOLOOP_COVERAGE=1   debug build plus gcov instrumentation
  TURBOLOOP_WERROR=1     turn compiler warnings into errors (CI uses this)
"""

import glob
import os
import sys

import setuptools
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext


# pyproject.toml gives the license as an SPDX expression with license-files
# (PEP 639), which setuptools reads from version 77 on.  pip and `python -m
# build` fetch a recent enough one themselves; a direct `python setup.py ...`
# uses the interpreter's own.
if int(setuptools.__version__.split(".")[0]) < 77:
    raise SystemExit(
        f"turboloop needs setuptools 77 or later to build, this is setuptools "
        f"{setuptools.__version__}: python -m pip install -U 'setuptools>=77'")


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


sources = sorted(glob.glob(os.path.join("csrc", "*.c")))
# The substrate's own C tests live in csrc/test/ and are not part of the module.

extra_compile_args = ["-std=c17", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
                      "-Wno-cast-function-type", "-fno-strict-aliasing"]
extra_link_args = []
undef_macros = []
define_macros = []

debug = _flag("TURBOLOOP_DEBUG") or _flag("TURBOLOOP_SANITIZE") or _flag("TURBOLOOP_COVERAGE")
if debug:
    extra_compile_args += ["-O0", "-g3"]
    undef_macros.append("NDEBUG")
    define_macros.append(("TL_DEBUG", "1"))
else:
    extra_compile_args += ["-O2"]
if _flag("TURBOLOOP_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
           "-fno-sanitize-recover=undefined"]
    extra_compile_args += san
    extra_link_args += san
if _flag("TURBOLOOP_COVERAGE"):
    extra_compile_args += ["--coverage"]
    extra_link_args += ["--coverage"]
if _flag("TURBOLOOP_WERROR"):
    extra_compile_args.append("-Werror")

if not sys.platform.startswith("linux") and sys.platform != "darwin" and "bsd" not in sys.platform:
    raise SystemExit("turboloop supports POSIX systems only")


class build_ext(_build_ext):
    """Rebuild everything when the configuration changes, so that a release
    build never keeps a module or objects left by a debug or sanitizer build
    (setuptools alone only compares timestamps)."""

    def run(self):
        config = " ".join(extra_compile_args + extra_link_args)
        stamp = os.path.join(self.build_temp, "turboloop-config")
        try:
            with open(stamp, encoding="utf-8") as f:
                previous = f.read()
        except OSError:
            previous = None
        if previous != config:
            self.force = True
        super().run()
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w", encoding="utf-8") as f:
            f.write(config)


setup(
    cmdclass={"build_ext": build_ext},
    ext_modules=[
        Extension(
            "turboloop._core",
            sources=sources,
            include_dirs=["csrc"],
            depends=sorted(glob.glob(os.path.join("csrc", "*.h"))),
            extra_compile_args=extra_compile_args,
            extra_link_args=extra_link_args,
            define_macros=define_macros,
            undef_macros=undef_macros,
        )
    ],
)
