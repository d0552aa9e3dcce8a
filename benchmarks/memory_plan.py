"""What each memory setting costs and saves, for the models people tune: the estimate `search` checks before it
starts (raytune_llm.training.memory), for Llama shapes of 1B and 7B parameters built on the meta device (no weights, no
GPU: a few seconds on any machine), per PEFT method and setting.

    python benchmarks/memory_plan.py [--seq 1024] [--rows 4] [--out benchmarks/results/memory_plan.json]

The estimate is 81-111% of the measured peak of CPU processes (tests/unit/test_memory.py); on a GPU add the CUDA
context (about 0.5 GiB) and the caching allocator's slack.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHAPES = {  # Llama 3.2 1B and Llama 2 7B
    "llama-1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": True},
    "llama-7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                 "num_key_value_heads": 32, "vocab_size": 32000},
}
SETTINGS: dict[str, dict[str, Any]] = {
    "full, fp32": ({"peft": {"method": "full"}}, False),
    "full, bf16": ({"peft": {"method": "full"}}, True),
    "full, bf16, checkpointing": ({"peft": {"method": "full"}, "gradient_checkpointing": True}, True),
    "lora, bf16": ({"peft": {"method": "lora", "lora": {"targets": "all-linear"}}}, True),
    "lora, bf16, checkpointing": ({"peft": {"method": "lora", "lora": {"targets": "all-linear"}},
                                   "gradient_checkpointing": True}, True),
    "qlora (4-bit), checkpointing": ({"peft": {"method": "lora", "lora": {"targets": "all-linear"},
                                               "quantization": {"bits": 4}}, "gradient_checkpointing": True}, True),
}


def build(shape: dict[str, Any], train: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from raytune_llm.models.peft_methods import method, wrap_peft

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**shape))
    if train.peft.method.value != "full":
        model = wrap_peft(model, method(train.peft.method.value).peft_config(train.peft, "llama", "", "CAUSAL_LM"))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=4, help="micro-batch rows per worker")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "memory_plan.json")
    args = parser.parse_args()
    from raytune_llm.schema import TrainConfig
    from raytune_llm.training.memory import GIB, estimate

    rows_out: list[dict[str, Any]] = []
    print(f"micro-batch {args.rows} x {args.seq} tokens per worker; GiB")
    print(f"{'model':10} {'setting':28} {'weights':>8} {'grads':>7} {'optim':>7} {'activ.':>7} {'total':>7} "
          f"{'x (1 row)':>9}")
    for name, shape in SHAPES.items():
        for setting, (train_dict, half) in SETTINGS.items():
            train = TrainConfig.model_validate(train_dict)
            model = build(shape, train)
            e = estimate(model, train, args.rows, args.seq, half)
            one = estimate(model, train, 1, args.seq, half)
            row = {"model": name, "setting": setting, "weights": e.weights / GIB, "gradients": e.gradients / GIB,
                   "optimizer": e.optimizer / GIB, "activations": e.activations / GIB, "total": e.total / GIB,
                   "total_micro_batch_1": one.total / GIB}
            rows_out.append(row)
            print(f"{name:10} {setting:28} {row['weights']:8.1f} {row['gradients']:7.1f} {row['optimizer']:7.1f} "
                  f"{row['activations']:7.1f} {row['total']:7.1f} {row['total_micro_batch_1']:9.1f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"seq": args.seq, "rows": args.rows, "rows_out": rows_out}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
