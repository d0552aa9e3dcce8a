"""Compression of an exported model (`raytune-llm compress`): int8 quantisation (torchao), structured head and
unstructured magnitude pruning, and the parts of distillation that are not training (the student's
initialisation). Each variant is a folder plain transformers loads. Measuring them: `measure`; the runs that train
(a pruned model's recovery, a student's distillation) go through the training loop: raytune_llm.search.compress.
"""

from raytune_llm.compression.methods import METHODS, refusal
from raytune_llm.compression.source import Source, open_source

__all__ = ["METHODS", "Source", "open_source", "refusal"]
