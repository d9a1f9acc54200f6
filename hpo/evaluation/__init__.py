"""Numbers you can trust: the held-out test split scored once, with a bootstrap interval, for the saved model."""
