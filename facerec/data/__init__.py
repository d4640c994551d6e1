"""Data layer: lists, LFW protocol, splits, leakage checks, transforms, datasets."""
