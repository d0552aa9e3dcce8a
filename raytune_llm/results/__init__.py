"""A run's results: trial records, the pick, export."""
