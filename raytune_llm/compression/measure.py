"""The numbers a compressed variant is worth: its scores on the run's own eval and test rows (the task's metrics),
parameters, size on disk, and CPU latency and throughput, all variants timed side by side in one process, on the
same rows and thread count, round-robin (so a noisy machine slows each alike)."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from raytune_llm.compression.source import Source
from raytune_llm.schema import PeftMethod


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
                threads: int = 1, compile_models: bool = False, device: str = "cpu") -> dict[str, dict[str, float]]:
    """Median and p95 latency at batch 1 (ms) and throughput (rows/s) at the batch size, per model, round-robin.
    On a GPU each call is timed to the end of its kernels (a CUDA call returns before they finish)."""
    import torch

    torch.set_num_threads(threads)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if device != "cpu":
        singles = [{k: v.to(device) for k, v in x.items()} for x in singles]
        batches = [{k: v.to(device) for k, v in x.items()} for x in batches]
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
                    sync()
                    latencies[name].append(time.perf_counter() - t)
                t = time.perf_counter()
                for x in batches:
                    m(**x)
                sync()
                spent[name] += time.perf_counter() - t
    out = {}
    for name, times in latencies.items():
        times.sort()
        out[name] = {"latency_ms_median": 1000 * statistics.median(times),
                     "latency_ms_p95": 1000 * times[min(len(times) - 1, int(0.95 * len(times)))],
                     "throughput_rows_s": rounds * rows / spent[name]}
    return out


def load_variant(folder: Path, task: str) -> Any:
    """A variant as a user loads it: plain transformers from its folder (int8: with torchao installed)."""
    from raytune_llm.tasks import get_task

    return get_task(task).auto_class().from_pretrained(str(folder)).eval()


def measure_variants(source: Source, out: Path, made: dict[str, dict[str, Any]], s: Any,
                     predictions_file: str = "eval_predictions.json") -> list[dict]:
    """Each variant reloaded from its folder, scored on eval and test, timed side by side (`s`: the timing
    settings: timing_rows, rounds, threads, compile)."""
    import datasets
    from transformers import AutoTokenizer

    from raytune_llm.core.storage import node_copy
    from raytune_llm.results.export import predict
    from raytune_llm.tasks import get_task

    info, train = source.info, source.train.model_copy(update={"peft": source.train.peft.model_copy(
        update={"method": PeftMethod.full})})
    metric = info.experiment.search.metric
    labelled_test = "test" in info.sizes and "test" not in info.unlabelled_splits
    models, rows = {}, []
    for name, what in made.items():
        if what.get("failed"):
            rows.append({"variant": name, **what})
            continue
        model = load_variant(out / name, source.task)
        eval_scores, preds = predict(model, info, train, "eval")
        (out / name / predictions_file).write_text(json.dumps(preds))
        test_scores = predict(model, info, train, "test")[0] if labelled_test else {}
        model.to("cpu")
        models[name] = model
        rows.append({"variant": name, **what, "eval": eval_scores,
                     "test": {k.replace("eval_", "test_"): v for k, v in test_scores.items()},
                     "size_bytes": size_on_disk(out / name), **parameters(model)})
    tokenizer = AutoTokenizer.from_pretrained(node_copy(info.tokenizer_path, info.run_id))
    split = datasets.load_from_disk(node_copy(info.data_path, info.run_id))["eval"]
    singles, batches = timing_batches(split, get_task(source.task).collator(tokenizer), s.timing_rows,
                                      train.eval_batch_size)
    print(f"compress: timing {len(models)} models side by side ({len(singles)} rows, {s.threads} thread(s), "
          f"{s.rounds} rounds{', compiled' if s.compile else ''})", flush=True)
    timing = time_models(models, singles, batches, s.rounds, s.threads, s.compile)
    gpu = gpu_timing(models, singles, batches, s)
    base = next(r for r in rows if r["variant"] == "original")
    test_metric = "test_" + metric.removeprefix("eval_")
    for r in rows:
        if r["variant"] not in timing:
            continue
        r.update(timing[r["variant"]])
        if gpu:
            r["gpu"] = gpu.get(r["variant"])  # None: the variant does not run on the GPU (its reason printed)
        r["delta"] = {metric: r["eval"].get(metric, float("nan")) - base["eval"].get(metric, float("nan")),
                      **({test_metric: r["test"].get(test_metric) - base["test"].get(test_metric)}
                         if labelled_test else {})}
        r["ratio_to_original"] = {
            "size": r["size_bytes"] / base["size_bytes"],
            "latency": r["latency_ms_median"] / base["latency_ms_median"],
            "throughput": r["throughput_rows_s"] / base["throughput_rows_s"]}
    return rows


def table(rows: list[dict], metric: str) -> str:
    """The rows as an aligned text table."""
    test_metric = "test_" + metric.removeprefix("eval_")
    head = ["variant", metric, "delta", test_metric, "delta", "params", "size MB", "size x", "p50 ms", "p95 ms",
            "latency x", "rows/s", "throughput x"]
    on_gpu = any("gpu" in r for r in rows)
    head += ["gpu p50 ms", "gpu rows/s"] if on_gpu else []
    lines = [head]
    for r in rows:
        if r.get("failed"):
            lines.append([r["variant"], f"failed: {r['failed']}"] + [""] * (len(head) - 2))
            continue
        d, x = r["delta"], r["ratio_to_original"]
        t = r["test"].get(test_metric)
        lines.append([r["variant"], f"{r['eval'][metric]:.4f}", f"{d[metric]:+.4f}",
                      "-" if t is None else f"{t:.4f}", "-" if t is None else f"{d[test_metric]:+.4f}",
                      f"{(r['nonzero_parameters'] or r['parameters']) / 1e6:.1f}M", f"{r['size_bytes'] / 2**20:.1f}",
                      f"{x['size']:.2f}", f"{r['latency_ms_median']:.1f}", f"{r['latency_ms_p95']:.1f}",
                      f"{x['latency']:.2f}", f"{r['throughput_rows_s']:.1f}", f"{x['throughput']:.2f}"])
        if on_gpu:
            g = r.get("gpu")
            lines[-1] += ["-", "-"] if g is None else [f"{g['latency_ms_median']:.2f}",
                                                        f"{g['throughput_rows_s']:.0f}"]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def gpu_timing(models: dict[str, Any], singles: list[dict], batches: list[dict], s: Any) -> dict[str, Any]:
    """The same timing on the GPU when there is one ({} without): each variant moved there in turn (one at a
    time, so a large model's variants need not fit together), timed, moved back."""
    import torch

    if not torch.cuda.is_available():
        return {}
    out: dict[str, Any] = {}
    for name, model in models.items():
        try:
            model.to("cuda")
            out[name] = time_models({name: model}, singles, batches, s.rounds, s.threads, s.compile, "cuda")[name]
        except (RuntimeError, NotImplementedError) as exc:  # e.g. a CPU-only quantised tensor type
            print(f"compress: {name} is not timed on the GPU: {str(exc).splitlines()[0][:200]}", flush=True)
            out[name] = None
        finally:
            model.to("cpu")
            torch.cuda.empty_cache()
    return out
