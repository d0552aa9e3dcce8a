#!/usr/bin/env bash
# The README's first command: install, run the demo search (BBC News + MiniLM, offline), write its report,
# export the best model.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/install.sh
export HF_HUB_OFFLINE=1  # the demo needs nothing from the hub
raytune-llm search search_spaces/demo_bbc_minilm.yaml "$@"
raytune-llm status runs/demo-bbc-minilm
raytune-llm report runs/demo-bbc-minilm --out report
raytune-llm export runs/demo-bbc-minilm --out best-model --force
