"""The memory and precision settings on a GPU (issue "Train the models people actually tune"): one short trial each
of a random-init Llama of a real shape (no hub on the GPU machine), LoRA on all linear layers, in the product's
own training loop: bf16, fp16 (loss scaling), bf16 + gradient checkpointing, QLoRA (4-bit NF4 base; needs
bitsandbytes), full fine-tuning in bf16, and a 2-worker NCCL DDP trial (needs 2 GPUs). Per run: samples/s, the
measured peak GPU memory (torch.cuda.max_memory_allocated) beside the estimate `search` checks before it starts
(raytune_llm.training.memory), and whether the run ended healthy.

    bash ../shared/device/make-kit.sh                  # once, here
    run(carry=[".devkit"], command="source .devkit/setup.sh && python benchmarks/gpu_large_models.py")

`--shape smol` (SmolLM2-135M's shape) is quicker; `--smoke` runs the same code on CPU with a tiny shape (the GPU-only
runs are skipped) to check the script itself. Writes benchmarks/results/gpu_large_models.json (or $OUT/...).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPES = {  # Llama 3.2 1B, SmolLM2-135M, and a toy for --smoke
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
           "num_key_value_heads": 8},
    "smol": {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
             "num_key_value_heads": 3},
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
             "num_key_value_heads": 2},
}
VOCAB = 32000
LORA = {"method": "lora", "lora": {"targets": "all-linear", "r": 16, "alpha": 32}}
RUNS: dict[str, dict[str, Any]] = {
    "lora bf16": {"precision": "bf16", "peft": LORA},
    "lora fp16": {"precision": "fp16", "peft": LORA},
    "lora bf16 + checkpointing": {"precision": "bf16", "peft": LORA, "gradient_checkpointing": True},
    "qlora 4-bit nf4": {"precision": "bf16", "peft": {**LORA, "quantization": {"bits": 4}}},
    "full bf16": {"precision": "bf16", "peft": {"method": "full"}},
}


def make_inputs(root: Path, shape: str, max_length: int) -> tuple[Path, Any]:
    """A random-init Llama classifier of `shape` with a word-level tokenizer, and the prepared random-word data."""
    import pandas as pd
    from transformers import BertTokenizerFast, LlamaConfig, LlamaForSequenceClassification

    from raytune_llm.runs.tokenise import tokenise
    from raytune_llm.schema import DataConfig, ModelConfig

    words = [f"w{i}" for i in range(VOCAB - 5)]
    (root / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    model_dir = root / "model"
    BertTokenizerFast(vocab_file=str(root / "vocab.txt")).save_pretrained(str(model_dir))
    LlamaForSequenceClassification(LlamaConfig(vocab_size=VOCAB, num_labels=2, pad_token_id=0, **SHAPES[shape])
                                   ).save_pretrained(str(model_dir))
    rng = random.Random(0)
    data_dir = root / "data"
    data_dir.mkdir()
    for split, rows in (("train", 512), ("validation", 64)):
        text = [" ".join(rng.choices(words, k=max_length)) for _ in range(rows)]
        pd.DataFrame({"text": text, "label": [rng.choice(["a", "b"]) for _ in range(rows)]}).to_parquet(
            data_dir / f"{split}.parquet")
    cfg = DataConfig(source=str(data_dir), labels=["a", "b"], test_split=None)
    return model_dir, tokenise(cfg, ModelConfig(name="m", max_length=max_length), str(model_dir), root / "prepared", 0)


def spec_for(model_dir: Path, prepared: Any, train: dict[str, Any], args: argparse.Namespace) -> Any:
    from raytune_llm.schema import TrainConfig
    from raytune_llm.training.spec import RunSpec

    cfg = TrainConfig.model_validate({"max_steps": args.steps, "eval_every": args.steps, "batch_size": args.batch,
                                      "eval_batch_size": args.batch, **train})
    return RunSpec(model_path=str(model_dir), tokenizer_path=str(model_dir), data_path=str(prepared.path),
                   label_names=prepared.label_names, train=cfg.model_dump(mode="json"), metric="eval_accuracy",
                   stability={"chance_level": {"enabled": False}}, torch_threads=None)


def estimate_gib(model_dir: Path, train: dict[str, Any], args: argparse.Namespace, half: bool) -> float:
    from raytune_llm.models.build import preflight
    from raytune_llm.schema import TrainConfig
    from raytune_llm.training.memory import GIB, estimate

    cfg = TrainConfig.model_validate(train)
    (model,) = preflight(str(model_dir), ["a", "b"], [cfg], str(model_dir))
    return estimate(model, cfg, args.batch, args.max_length, half).total / GIB


def one_run(model_dir: Path, prepared: Any, train: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from raytune_llm.training.bare import BareSession
    from raytune_llm.training.loop import run

    cuda = torch.cuda.is_available() and not args.smoke
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    session = BareSession(None, device="cuda" if cuda else "cpu")
    started = time.perf_counter()
    last = run(spec_for(model_dir, prepared, train if cuda else {**train, "precision": "fp32"}, args), session)
    return {"samples_per_s": last.get("samples_per_s"), "wall_s": time.perf_counter() - started,
            "peak_gib": torch.cuda.max_memory_allocated() / 1024**3 if cuda else None,
            "stop_reason": last.get("stop_reason"), "autocast": last.get("autocast"),
            "fp16_skipped_steps": last.get("fp16_skipped_steps"), "step": last.get("step")}


def _ddp_rank(rank: int, port: int, model_dir: str, prepared: Any, train: dict, args: argparse.Namespace,
              out: str) -> None:
    import torch
    import torch.distributed as dist

    from raytune_llm.training.bare import BareSession
    from raytune_llm.training.loop import run

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    session = BareSession(None, device=f"cuda:{rank}")
    session.rank, session.world_size = rank, 2
    last = run(spec_for(Path(model_dir), prepared, train, args), session)
    if rank == 0:
        Path(out).write_text(json.dumps({"samples_per_s": last.get("samples_per_s"),
                                         "peak_gib": torch.cuda.max_memory_allocated() / 1024**3,
                                         "stop_reason": last.get("stop_reason"), "step": last.get("step")}))
    dist.destroy_process_group()


def ddp_run(model_dir: Path, prepared: Any, train: dict[str, Any], args: argparse.Namespace, root: Path) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = root / "ddp.json"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_ddp_rank, args=(r, port, str(model_dir), prepared, train, args, str(out)))
             for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=900)
    if any(p.exitcode != 0 for p in procs):
        return {"error": f"exit codes {[p.exitcode for p in procs]}"}
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="1b")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny shape: check the script")
    args = parser.parse_args()
    import torch

    if args.smoke:
        args.shape, args.steps, args.batch, args.max_length = "tiny", 4, 4, 32
    cuda = torch.cuda.is_available() and not args.smoke
    root = Path(tempfile.mkdtemp(prefix="rtl-gpu-large-"))
    model_dir, prepared = make_inputs(root, args.shape, args.max_length)
    results: dict[str, Any] = {"shape": args.shape, "steps": args.steps, "batch": args.batch,
                               "max_length": args.max_length,
                               "gpu": torch.cuda.get_device_name(0) if cuda else None, "runs": {}}
    print(f"{'run':28} {'samples/s':>9} {'peak GiB':>9} {'est. GiB':>9} {'est/peak':>8}  end")
    for name, train in RUNS.items():
        quant = "quantization" in train["peft"]
        if quant and not (cuda and importlib.util.find_spec("bitsandbytes")):
            results["runs"][name] = {"skipped": "needs a CUDA GPU and bitsandbytes"}
            print(f"{name:28} skipped: needs a CUDA GPU and bitsandbytes")
            continue
        row = one_run(model_dir, prepared, train, args)
        row["estimate_gib"] = estimate_gib(model_dir, train, args, half=cuda and train["precision"] != "fp32")
        results["runs"][name] = row
        ratio = row["estimate_gib"] / row["peak_gib"] if row["peak_gib"] else None
        print(f"{name:28} {row['samples_per_s'] or 0:9.1f} {row['peak_gib'] or 0:9.2f} {row['estimate_gib']:9.2f} "
              f"{ratio or 0:8.2f}  {row['stop_reason'] or 'done'} (step {row['step']})", flush=True)
    if cuda and torch.cuda.device_count() >= 2:
        results["runs"]["lora bf16, 2-worker NCCL DDP"] = row = ddp_run(model_dir, prepared, RUNS["lora bf16"],
                                                                      args, root)
        print(f"{'lora bf16, 2-worker DDP':28} {row}")
    else:
        results["runs"]["lora bf16, 2-worker NCCL DDP"] = {"skipped": "needs 2 GPUs"}
        print("lora bf16, 2-worker NCCL DDP: skipped (needs 2 GPUs)")
    out = Path(os.environ.get("OUT") or REPO / "benchmarks" / "results") / "gpu_large_models.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
