"""Benchmarks comparing turboloop with asyncio's own loop and uvloop.

Run ``python -m bench --help`` from the repository root; bench/README.md
describes the workloads.
"""
