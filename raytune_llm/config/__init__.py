"""Loading an experiment YAML and every check that validate runs."""
