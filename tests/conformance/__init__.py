"""CPython conformance harness: runs the interpreter's own test.test_asyncio
against turboloop's Task, Future and loop.  See README.md in this directory.

    PYTHONPATH=python python -m tests.conformance [--group G] [--module M]
        [--json out.json] [--update-expected]
"""
