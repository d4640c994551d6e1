"""facerec: face-recognition metric learning toolkit (engine package)."""

__version__ = "0.1.0"
