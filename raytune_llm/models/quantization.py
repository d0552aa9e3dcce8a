"""Quantised base weights for PEFT methods (train.peft.quantization): the frozen base model in 4 or 8 bits through
bitsandbytes (QLoRA: 4 bits, NF4, double quantisation, bf16 compute), on CUDA GPUs only. The adapter trains in
fp32 as with any PEFT method; checkpoints hold the adapter only. Export writes the adapter (naming the base model as
the user gave it) and, with --merge, merges it into the full-precision base: merging into 4-bit weights would round
the update away. The export's self-check then runs the adapter on the full-precision base, so a few predictions may
differ from the trial's (it says how many).
"""

from __future__ import annotations

from typing import Any

from raytune_llm.core.errors import UserError
from raytune_llm.models.pretrained import half_dtype, load_pretrained
from raytune_llm.schema import TrainConfig


def quantized(task: str, model_path: str, label_names: list[str], train: TrainConfig, **kwargs: Any) -> Any:
    """The base model with its frozen weights in 4/8 bits on this worker's GPU (bitsandbytes), made ready for
    k-bit training by PEFT (norms and head in fp32, inputs that require grads)."""
    import importlib.util

    import torch

    q = train.peft.quantization
    if not torch.cuda.is_available():
        raise UserError("train.peft.quantization: bitsandbytes' 4-/8-bit weights run on CUDA GPUs; this worker has "
                        "none (resources.gpus_per_worker)")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("train.peft.quantization: needs bitsandbytes: pip install 'raytune-llm[quant]'")
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    compute = half_dtype(q.compute_dtype)
    bnb = BitsAndBytesConfig(load_in_4bit=q.bits == 4, load_in_8bit=q.bits == 8, bnb_4bit_quant_type=q.quant_type,
                             bnb_4bit_use_double_quant=q.double_quant, bnb_4bit_compute_dtype=compute)
    model = load_pretrained(task, model_path, label_names, compute, quantization_config=bnb,
                            device_map={"": torch.cuda.current_device()}, **kwargs)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=train.gradient_checkpointing,
                                           gradient_checkpointing_kwargs={"use_reentrant": False})


def is_quantized(model: Any) -> bool:
    """A bitsandbytes model: already on its GPU, and `.to()` would refuse it."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))
