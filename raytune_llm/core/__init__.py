"""The bottom layer: errors, strict config models, the registry, outcomes, storage paths, the process cache."""
