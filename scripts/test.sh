#!/usr/bin/env bash
# The README's second command (and what CI runs): install the test extras, lint, run the whole test suite.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/install.sh test
ruff check raytune_llm tests benchmarks
python -m pytest -ra "$@"
