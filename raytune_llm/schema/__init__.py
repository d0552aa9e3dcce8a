"""The experiment YAML as pydantic models, and the search space."""
