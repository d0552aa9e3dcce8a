"""The report's "Compressed variants" section: the latest `raytune-llm compress` of the run's pick (its table,
RUN/compression/<stamp>.json), with a size-vs-score and a latency-vs-score plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from raytune_llm.runs.layout import COMPRESSION_DIR


def latest(run_dir: Path) -> dict[str, Any] | None:
    """The newest compression table of the run, or None when the pick was never compressed."""
    tables = sorted((run_dir / COMPRESSION_DIR).glob("*.json")) if (run_dir / COMPRESSION_DIR).is_dir() else []
    return json.loads(tables[-1].read_text()) if tables else None


def score_key(comp: dict[str, Any]) -> tuple[str, str]:
    """Which score the plots and table use: the test score when the variants have one, else the eval score."""
    metric = comp["objective"]["metric"]
    test = "test_" + metric.removeprefix("eval_")
    rows = [r for r in comp["variants"] if not r.get("failed")]
    return ("test", test) if rows and all(test in r.get("test", {}) for r in rows) else ("eval", metric)


def figure(comp: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    split, key = score_key(comp)
    rows = [r for r in comp["variants"] if not r.get("failed")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x, label in ((axes[0], "size_bytes", "size on disk (MB)"),
                         (axes[1], "latency_ms_median", "CPU latency at batch 1, median (ms)")):
        for r in rows:
            value = r[x] / 2**20 if x == "size_bytes" else r[x]
            ax.scatter(value, r[split][key], color="#c44" if r["variant"] == "original" else "#3b75c4")
            ax.annotate(r["variant"], (value, r[split][key]), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def rows(comp: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The table's header and rows: score and delta, size, latency, throughput and their ratios to the original."""
    split, key = score_key(comp)
    header = ["variant", key, "delta", "size MB", "size x", "p50 ms", "p95 ms", "latency x", "rows/s", "throughput x"]
    out = []
    for r in comp["variants"]:
        if r.get("failed"):
            out.append([r["variant"], f"failed: {r['failed']}", *[""] * (len(header) - 2)])
            continue
        x = r["ratio_to_original"]
        out.append([r["variant"], f"{r[split][key]:.4f}", f"{r['delta'].get(key, 0):+.4f}",
                    f"{r['size_bytes'] / 2**20:.1f}", f"{x['size']:.2f}", f"{r['latency_ms_median']:.1f}",
                    f"{r['latency_ms_p95']:.1f}", f"{x['latency']:.2f}", f"{r['throughput_rows_s']:.1f}",
                    f"{x['throughput']:.2f}"])
    return header, out
