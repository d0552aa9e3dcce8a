"""GGUF checkpoints (llama.cpp's format, e.g. the SmolLM2 of `builtin:smollm2`): dequantised once per search into
a normal `save_pretrained` folder that every trial loads in a second, instead of parsing GGUF in each trial."""

from __future__ import annotations

import time
from pathlib import Path

from raytune_llm.core.errors import UserError


def gguf_source(model_path: str, gguf_file: str | None) -> tuple[str, str] | None:
    """(folder or hub id, file name) when the model is a GGUF checkpoint, else None."""
    if gguf_file:
        return model_path, gguf_file
    path = Path(model_path)
    if path.suffix == ".gguf" and path.is_file():
        return str(path.parent), path.name
    return None


def convert(source: str, gguf_file: str, out: Path) -> str:
    """Write the dequantised model (float32 safetensors) and its tokenizer to `out`; returns `out`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    started = time.time()
    print(f"converting {gguf_file} to a save_pretrained checkpoint (once for this search) ...")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf_file, dtype=torch.float32)
        config = AutoConfig.from_pretrained(source, gguf_file=gguf_file)
    except (OSError, ValueError, ImportError) as exc:
        raise UserError(f"model.gguf_file: cannot load {gguf_file} from {source}: {str(exc).splitlines()[0]}") from None
    # transformers refuses to save a model it loaded from GGUF (it counts as quantized), so the dequantised
    # weights move into a plain model built from the same config.
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict(), assign=True)
    if getattr(plain.config, "tie_word_embeddings", False):
        plain.tie_weights()
    plain.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    print(f"converted in {time.time() - started:.1f} s: {out}")
    return str(out)
