"""Using a trained model: the predictor, calibration, the decision threshold, scoring CSV files."""
