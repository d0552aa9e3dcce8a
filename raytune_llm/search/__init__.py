"""The search driver on Ray Tune."""
