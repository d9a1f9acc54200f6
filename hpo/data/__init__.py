"""The data: reading a CSV (or the embedded data set), checking it, splitting and preprocessing it."""
