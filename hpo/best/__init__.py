"""The on-disk model format of best/: file names, model.json, atomic replacement, Pareto-front folders, choosing one."""
