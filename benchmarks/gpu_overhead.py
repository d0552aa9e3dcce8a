"""benchmarks/overhead.py's questions on a GPU, with a random-init model of a real shape (no hub on the GPU machine):

  1. start-up per executor: trial start -> first step, first trial (cold) and later ones (warm), in-process and
     Ray Train with 1 worker each (one GPU per trial);
  2. packing: 8 single-worker in-process trials at 1/8 GPU each, running together, against one trial alone on
     the whole GPU: aggregate samples/s (the sum over the trials running at once) and the ratio.

The model is BERT-base shaped (110M parameters, `--shape minilm` for 22M), the data 2,000 rows of random words of
`--max-length` tokens, two labels. Run on the GPU machine (see ../.library/device/README.md):

    bash ../shared/device/make-kit.sh                  # once, here
    run(carry=[".devkit"], command="source .devkit/setup.sh && python benchmarks/gpu_overhead.py")

`--smoke` runs the same code on CPU with a tiny shape and 2 packed trials, to check the script itself.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from overhead import search

from raytune_llm.config.loading import validate_dict
from raytune_llm.search.driver import connect

SHAPES = {"bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                        "intermediate_size": 3072},
          "minilm": {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
                     "intermediate_size": 1536},
          "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}}
VOCAB = 30522


def make_inputs(root: Path, shape: str, max_length: int) -> tuple[Path, Path]:
    """A random-init BERT of `shape` with a word-level vocabulary, and random-word Parquet splits."""
    import pandas as pd
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = [f"w{i}" for i in range(VOCAB - 5)]
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    model_dir = root / "model"
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(str(model_dir))
    config = BertConfig(vocab_size=VOCAB, num_labels=2, **SHAPES[shape])
    BertForSequenceClassification(config).save_pretrained(str(model_dir))
    rng = random.Random(0)
    data_dir = root / "data"
    data_dir.mkdir()
    for split, rows in (("train", 2000), ("validation", 128)):
        text = [" ".join(rng.choices(words, k=max_length)) for _ in range(rows)]
        pd.DataFrame({"text": text, "label": [rng.choice(["a", "b"]) for _ in range(rows)]}).to_parquet(
            data_dir / f"{split}.parquet")
    return model_dir, data_dir


def experiment(model: Path, data: Path, storage: Path, name: str, executor: str, gpus: float, trials: int,
               args: argparse.Namespace) -> Any:
    return validate_dict({
        "model": {"name": str(model), "max_length": args.max_length},
        "data": {"source": str(data), "labels": ["a", "b"], "test_split": None},
        "train": {"max_steps": args.steps, "eval_every": args.steps // 2, "batch_size": args.batch_size,
                  "eval_batch_size": 64},
        "stability": {"enabled": False},
        "search": {"num_trials": trials, "scheduler": {"name": "fifo"}, "max_concurrent_trials": trials,
                   "space": {"optimizer.lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-4, "log": True}}},
        "resources": {"num_workers": 1, "executor": executor, "gpus_per_worker": gpus, "cpus_per_worker": 1,
                      "torch_threads": 1},
        "run": {"name": name, "storage_path": str(storage)},
    })


def startup(model: Path, data: Path, storage: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for executor in ("tune", "train"):
        cfg = experiment(model, data, storage, f"startup-{executor}", executor, args.gpu, args.startup_trials, args)
        cfg.search.max_concurrent_trials = 1
        firsts, starts, _, _ = search(cfg)
        to_first = [r["first_step_at"] - starts.at[r["trial_id"]] for r in firsts]
        handover = [b["first_step_at"] - starts.ended[a["trial_id"]] for a, b in itertools.pairwise(firsts)]
        out[executor] = {"cold_s": to_first[0], "warm_s": statistics.median(to_first[1:]),
                         "previous_end_to_first_step_s": statistics.median(handover),
                         "samples_per_s": statistics.median(r["last"]["samples_per_s"] for r in firsts)}
    return out


def packing(model: Path, data: Path, storage: Path, args: argparse.Namespace) -> dict[str, Any]:
    alone_cfg = experiment(model, data, storage, "alone", "tune", args.gpu, 1, args)
    alone, _, _, _ = search(alone_cfg)
    share = args.gpu / args.pack
    packed_cfg = experiment(model, data, storage, "packed", "tune", share, args.pack, args)
    packed, _, wall, _ = search(packed_cfg)
    # The trials ran side by side: their steady samples/s add up (each one's last window, after warm-up).
    aggregate = sum(r["last"]["samples_per_s"] for r in packed)
    single = alone[0]["last"]["samples_per_s"]
    return {"trials": len(packed), "gpu_share": share, "alone_samples_per_s": single,
            "packed_aggregate_samples_per_s": aggregate, "ratio": aggregate / single, "packed_wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=list(SHAPES), default="bert-base")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--startup-trials", type=int, default=4)
    parser.add_argument("--pack", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny shape, 2 packed trials: checks the script")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "benchmarks/results"))
                        / "gpu_overhead.json")
    args = parser.parse_args()
    args.gpu = 0.0 if args.smoke else 1.0
    if args.smoke:
        args.shape, args.max_length, args.steps, args.pack, args.startup_trials = "tiny", 16, 8, 2, 2
    else:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device here; use --smoke to check the script on CPU")
    root = Path(tempfile.mkdtemp(prefix="rtl-gpu-bench-"))
    model, data = make_inputs(root, args.shape, args.max_length)
    connect(experiment(model, data, root / "runs", "sizing", "tune", args.gpu, 1, args), None)
    t = time.time()
    results = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "startup": startup(model, data, root / "runs", args),
               "packing": packing(model, data, root / "runs", args)}
    results["wall_s"] = time.time() - t
    print(json.dumps(results, indent=2))
    s, p = results["startup"], results["packing"]
    print(f"\n{'':<36}{'in-process':>12}{'Train':>12}")
    for label, key in (("first trial -> first step (s)", "cold_s"), ("later trials -> first step (s)", "warm_s"),
                       ("previous trial's end -> first step (s)", "previous_end_to_first_step_s"),
                       ("samples/s in a trial", "samples_per_s")):
        print(f"{label:<36}{s['tune'][key]:>12.2f}{s['train'][key]:>12.2f}")
    print(f"\n{p['trials']} trials at {p['gpu_share']:g} GPU each: {p['packed_aggregate_samples_per_s']:.1f} "
          f"samples/s together, one alone {p['alone_samples_per_s']:.1f}: x{p['ratio']:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
