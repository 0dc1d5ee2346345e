#!/bin/sh
# Instruction counts per operation of a micro workload on each loop, under
# valgrind's callgrind: numbers that stay put on a noisy machine.
#   bench/callgrind.sh [--workload sleep0|call_soon_many|...|all] [--loops ...]
# PYTHON selects the interpreter (default: python3).
cd "$(dirname "$0")/.." || exit 1
exec "${PYTHON:-python3}" -m bench.callgrind "$@"
