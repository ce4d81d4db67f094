"""The desired state as files: YAML loading, JSON Schema, config, environment files, git refs."""
