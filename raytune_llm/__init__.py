"""raytune-llm: stability-aware hyperparameter search for fine-tuning language models on Ray."""

import logging

__version__ = "0.1.0"

# transformers imports torchao (compression's int8) wherever it is installed: its CPU wheel then logs, in every
# process, a warning per CUDA kernel library it cannot load, and torch one per Enum torchao registers. Neither is
# anything a user can act on; errors still show.
for _name in ("torchao", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)
