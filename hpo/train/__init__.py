"""Training one trial: the Optuna objective, the LightningModule, its callbacks and batches."""
