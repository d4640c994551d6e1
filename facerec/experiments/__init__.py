"""Experiment phases: the plan (phases.yaml + presets), the runner, the results index, statistics
and the comparison report."""
