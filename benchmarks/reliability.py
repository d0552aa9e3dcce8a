"""Memory and disk over a long search: does anything grow with the number of trials?

Runs a 20-trial search (ASHA, 2 DDP workers per trial) of a small BERT built here (random weights, real MiniLM
tokenizer, BBC News), and after every trial records the driver's RSS, the RSS of all Ray processes, and the
disk used by the run folder and its checkpoints.

    python benchmarks/reliability.py [--trials 20] [--out benchmarks/results/reliability.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# A shared, busy machine can take over a minute to start a worker group; do not fail a trial for that.
os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "300")

import psutil
from ray.tune import Callback

from raytune_llm.config.loading import validate_dict
from raytune_llm.results.trials import load_trials, outcome_counts
from raytune_llm.runs.prepare import prepare_run
from raytune_llm.search.driver import build_tuner, connect
from raytune_llm.sources.builtins import minilm


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def ray_rss() -> int:
    total = 0
    for p in psutil.process_iter(["cmdline", "memory_info"]):
        try:
            if "ray" in " ".join(p.info["cmdline"] or []).lower() and p.pid != os.getpid():
                total += p.info["memory_info"].rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, TypeError):
            pass
    return total


class Recorder(Callback):
    def __init__(self, run_dir: Path) -> None:
        self.run_dir, self.samples = run_dir, []

    def _sample(self) -> None:
        self.samples.append({
            "trials_ended": len(self.samples) + 1,
            "driver_rss_mb": psutil.Process().memory_info().rss / 2**20,
            "ray_processes_rss_mb": ray_rss() / 2**20,
            "run_dir_mb": du(self.run_dir) / 2**20,
            "checkpoints_mb": du(self.run_dir / "train") / 2**20 if (self.run_dir / "train").exists() else 0.0,
        })

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._sample()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._sample()


def small_bert(out: Path) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(minilm()))
    tokenizer.save_pretrained(out)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=256, max_position_embeddings=128)
    BertForSequenceClassification(config).save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reliability.json"))
    args = parser.parse_args()
    storage = Path(tempfile.mkdtemp(prefix="rtl-reliability-"))
    model = small_bert(storage / "small-bert")
    cfg = validate_dict({
        "model": {"name": str(model), "max_length": 64},
        "data": {"source": "builtin:bbc_news", "max_train_samples": 480},
        "train": {"epochs": 1, "batch_size": 16, "eval_every": 5},
        "search": {"num_trials": args.trials, "max_concurrent_trials": 1,
                   "space": {"optimizer.lr": {"type": "float", "low": 1.0e-5, "high": 1.0e-2, "log": True}},
                   "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2}},
        "stability": {"chance_level": {"enabled": False}},
        "resources": {"num_workers": 2},
        "run": {"name": "reliability", "storage_path": str(storage)},
    })
    run_dir, info = prepare_run(cfg)
    recorder = Recorder(run_dir)
    build_tuner(cfg, info, connect(cfg, None), [recorder]).fit()
    samples = recorder.samples
    print(f"{'trials ended':>12} {'driver RSS MB':>14} {'Ray procs RSS MB':>17} {'run dir MB':>11} "
          f"{'checkpoints MB':>15}")
    for s in samples:
        print(f"{s['trials_ended']:>12} {s['driver_rss_mb']:>14.0f} {s['ray_processes_rss_mb']:>17.0f} "
              f"{s['run_dir_mb']:>11.1f} {s['checkpoints_mb']:>15.1f}")
    counts = outcome_counts(load_trials(run_dir))
    print("outcomes: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"samples": samples, "outcomes": counts,
                                    "model_mb": du(model) / 2**20}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
