"""python -m turboloop: an unchanged asyncio program must see the same
sys.argv, __main__, sys.path[0] and exit status as under plain python, while
its loops come from turboloop.  Every case runs the program both ways and
compares."""

import json
import os
import subprocess
import sys

import pytest

from support import CHILD_TIMEOUT, script, subprocess_env

# Prints what a program can observe about how it was started, as JSON.  The
# fields that differ between plain python and turboloop are under "loop".
PROBE = script("""
    import asyncio, json, os, pickle, sys

    class Picklable:
        pass

    async def main():
        await asyncio.sleep(0)
        return asyncio.get_running_loop()

    def report():
        try:
            import turboloop
        except ImportError:
            turboloop = None
        running = asyncio.run(main())
        fresh = asyncio.new_event_loop()
        fresh.close()
        main_module = sys.modules["__main__"]
        return {
            "argv": sys.argv,
            "name": __name__,
            "file": globals().get("__file__"),
            "main_file": getattr(main_module, "__file__", None),
            "spec": getattr(globals().get("__spec__"), "name", None),
            "path0": os.path.abspath(sys.path[0] or os.curdir),
            "main_is_this_module": main_module.__dict__ is globals(),
            "pickle_roundtrip": type(pickle.loads(pickle.dumps(Picklable()))).__name__,
            "class_module": Picklable.__module__,
            "loop": {
                "run": turboloop is not None and isinstance(running, turboloop.Loop),
                "new_event_loop": turboloop is not None and isinstance(fresh, turboloop.Loop),
            },
        }

    if __name__ == "__main__":
        print(json.dumps(report()))
""")


def run(args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=subprocess_env(), capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT)


def run_both(args, cwd):
    """Run args with plain python and with python -m turboloop."""
    plain = run(args, cwd)
    turbo = run(["-m", "turboloop", *args], cwd)
    return plain, turbo


def compare_probe(plain, turbo):
    assert plain.returncode == 0, plain.stderr
    assert turbo.returncode == 0, turbo.stderr
    expected = json.loads(plain.stdout)
    got = json.loads(turbo.stdout)
    assert expected.pop("loop") == {"run": False, "new_event_loop": False}
    assert got.pop("loop") == {"run": True, "new_event_loop": True}
    assert got == expected


@pytest.fixture
def project(tmp_path):
    """A directory with a script, a sibling module it imports, a module and a
    package runnable with -m."""
    pkg_dir = tmp_path / "proj"
    pkg_dir.mkdir()
    (pkg_dir / "sibling.py").write_text("VALUE = 'sibling'\n")
    (pkg_dir / "probe.py").write_text("import sibling\n" + PROBE)
    (pkg_dir / "probemod.py").write_text(PROBE)
    pkg = pkg_dir / "probepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(PROBE)
    return pkg_dir


def test_script(tl, project):
    compare_probe(*run_both(["probe.py", "a", "--flag", "b c"], cwd=project))


def test_script_by_relative_path_from_elsewhere(tl, project):
    # The script imports a module next to it, which works only if sys.path[0]
    # is the script's directory, as python makes it.
    compare_probe(*run_both([os.path.join(project.name, "probe.py"), "x"], cwd=project.parent))


def test_script_by_absolute_path(tl, project, tmp_path):
    compare_probe(*run_both([str(project / "probe.py")], cwd=tmp_path))


def test_dash_c(tl, project):
    code = "import sibling\n" + PROBE
    compare_probe(*run_both(["-c", code, "arg1", "-x"], cwd=project))


def test_dash_m_module(tl, project):
    compare_probe(*run_both(["-m", "probemod", "one", "two"], cwd=project))


def test_dash_m_package(tl, project):
    compare_probe(*run_both(["-m", "probepkg", "--opt"], cwd=project))


@pytest.mark.parametrize(
    "body, expected_code",
    [
        ("sys.exit(3)", 3),
        ("sys.exit(0)", 0),
        ("raise SystemExit('bye')", 1),
        ("raise ValueError('boom')", 1),
        ("asyncio.run(fail())", 1),
        ("pass", 0),
    ],
)
def test_exit_status_and_stderr(tl, tmp_path, body, expected_code):
    path = tmp_path / "exits.py"
    path.write_text(script(f"""
        import asyncio, sys

        async def fail():
            await asyncio.sleep(0)
            raise RuntimeError("failed in coroutine")

        print("before", flush=True)
        {body}
    """))
    plain, turbo = run_both([str(path)], cwd=tmp_path)
    assert plain.returncode == expected_code
    assert turbo.returncode == plain.returncode, turbo.stderr
    assert turbo.stdout == plain.stdout == "before\n"
    # Tracebacks differ in their frames; the final line is what users read.
    plain_last = plain.stderr.strip().splitlines()[-1:] if plain.stderr.strip() else []
    turbo_last = turbo.stderr.strip().splitlines()[-1:] if turbo.stderr.strip() else []
    assert turbo_last == plain_last


def test_stdin_and_stdout_pass_through(tl, tmp_path):
    path = tmp_path / "echo.py"
    path.write_text(script("""
        import asyncio, sys

        async def main():
            loop = asyncio.get_running_loop()
            line = await loop.run_in_executor(None, sys.stdin.readline)
            print(line.strip().upper())

        asyncio.run(main())
    """))
    for args in ([str(path)], ["-m", "turboloop", str(path)]):
        proc = subprocess.run([sys.executable, *args], input="hello\n", env=subprocess_env(),
                              capture_output=True, text=True, timeout=CHILD_TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "HELLO\n"


def test_missing_script_fails(tl, tmp_path):
    plain, turbo = run_both([str(tmp_path / "does_not_exist.py")], cwd=tmp_path)
    assert plain.returncode != 0
    assert turbo.returncode != 0
    assert "does_not_exist.py" in turbo.stderr


def test_missing_module_fails(tl, tmp_path):
    plain, turbo = run_both(["-m", "no_such_module_here"], cwd=tmp_path)
    assert plain.returncode != 0
    assert turbo.returncode != 0
    assert "no_such_module_here" in turbo.stderr
