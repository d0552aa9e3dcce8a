"""A run folder: its layout and its preparation."""
