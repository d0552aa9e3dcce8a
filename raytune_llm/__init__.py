"""raytune-llm: stability-aware hyperparameter search for fine-tuning language models on Ray."""

__version__ = "0.1.0"
