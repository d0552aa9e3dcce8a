"""Where models and data come from: built-in assets, dataset files, GGUF checkpoints."""
