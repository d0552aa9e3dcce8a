"""The training loop and its reusable parts."""
