"""The search-space file: YAML parsed and validated into frozen dataclasses before anything trains."""
