"""The numbers a compressed variant is worth: its scores on the run's own eval and test rows (the task's metrics),
parameters, size on disk, and CPU latency and throughput, all variants timed side by side in one process, on the
same rows and thread count, round-robin (so a noisy machine slows each alike)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any


def size_on_disk(folder: Path) -> int:
    """Bytes of the weights and config files transformers loads the model from."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".safetensors", ".json", ".bin"))


def parameters(model: Any) -> dict[str, int | None]:
    """All parameters, and the nonzero ones of the linear layers' weights and the rest (None for a quantised
    model, whose weights are int8 tensors)."""
    import torch

    total = sum(p.numel() for p in model.parameters())
    try:
        nonzero = sum(int(torch.count_nonzero(p.detach())) for p in model.parameters())
    except (NotImplementedError, RuntimeError, TypeError):
        nonzero = None
    return {"parameters": total, "nonzero_parameters": nonzero}


def timing_batches(dataset: Any, collate: Any, rows: int, batch_size: int) -> tuple[list[dict], list[dict]]:
    """The first `rows` rows of a split, one per batch (latency) and `batch_size` per batch (throughput)."""
    features = [{k: v for k, v in dataset[i].items() if k in ("input_ids", "attention_mask", "token_type_ids")}
                for i in range(min(rows, len(dataset)))]
    singles = [collate([f]) for f in features]
    batches = [collate(features[i:i + batch_size]) for i in range(0, len(features), batch_size)]
    return singles, batches


def time_models(models: dict[str, Any], singles: list[dict], batches: list[dict], rounds: int = 3,
                threads: int = 1, compile_models: bool = False) -> dict[str, dict[str, float]]:
    """Median and p95 latency at batch 1 (ms) and throughput (rows/s) at the batch size, per model, round-robin."""
    import torch

    torch.set_num_threads(threads)
    runners = {k: torch.compile(m) if compile_models else m for k, m in models.items()}
    latencies: dict[str, list[float]] = {k: [] for k in runners}
    spent: dict[str, float] = dict.fromkeys(runners, 0.0)
    rows = sum(int(b["input_ids"].shape[0]) for b in batches)
    with torch.inference_mode():
        for m in runners.values():  # warm-up (and compilation) before any timing
            m(**singles[0])
            m(**batches[0])
        for _ in range(rounds):
            for name, m in runners.items():
                for x in singles:
                    t = time.perf_counter()
                    m(**x)
                    latencies[name].append(time.perf_counter() - t)
                t = time.perf_counter()
                for x in batches:
                    m(**x)
                spent[name] += time.perf_counter() - t
    out = {}
    for name, times in latencies.items():
        times.sort()
        out[name] = {"latency_ms_median": 1000 * statistics.median(times),
                     "latency_ms_p95": 1000 * times[min(len(times) - 1, int(0.95 * len(times)))],
                     "throughput_rows_s": rounds * rows / spent[name]}
    return out
