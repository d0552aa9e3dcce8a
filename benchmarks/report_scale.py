"""How `raytune-llm report` scales: made-up runs of growing size (tests/synthetic_run.py: every outcome, per-step
loss and gradient norm), each reported once; prints seconds, page size and figure sizes per size.

    python benchmarks/report_scale.py [--sizes 100,500,2000] [--steps 200]
                                      [--out benchmarks/results/report_scale.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from raytune_llm.report import build_report  # noqa: E402
from tests.synthetic_run import write_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,2000")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/report_scale.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            run = write_run(Path(tmp) / f"run{n}", trials=n, steps=args.steps, eval_every=10)
            started = time.perf_counter()
            page = build_report(run, Path(tmp) / f"report{n}")
            seconds = time.perf_counter() - started
            figures = sum(p.stat().st_size for p in (page.parent / "figures").glob("*.png"))
            rows.append({"trials": n, "steps": args.steps, "seconds": seconds,
                         "page_mb": page.stat().st_size / 2**20, "figures_mb": figures / 2**20})
    print(f"{'trials':>7} {'steps':>6} {'seconds':>8} {'page MB':>8} {'figures MB':>11}")
    for r in rows:
        print(f"{r['trials']:>7} {r['steps']:>6} {r['seconds']:>8.1f} {r['page_mb']:>8.2f} {r['figures_mb']:>11.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
