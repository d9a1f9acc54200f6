"""Running a study: the trial loop, the ask lock, parallel workers, and publishing the best model."""
