"""Small per-search Ray actors."""
