"""Scoring and measuring: embed pairs and score them (scoring), EER / TAR@FAR / AUC (metrics,
metric_keys), score files (scores), LDA/PLDA back-ends (backend), ROC and curves (plots)."""
