#!/usr/bin/env bash
# The README's second command (and what CI runs): install the test extras, lint, run the whole test suite.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
. scripts/install.sh test
# The report tests open the page in a real headless Chromium: Debian's packages, never a browser download.
if ! command -v chromium > /dev/null || ! command -v chromedriver > /dev/null; then
  sudo_=""
  [ "$(id -u)" = 0 ] || sudo_="sudo"
  $sudo_ apt-get update -q > /dev/null
  $sudo_ apt-get install -y -q chromium chromium-driver > /dev/null
fi
ruff check raytune_llm tests benchmarks
python -m pytest -ra --durations=25 "$@"
