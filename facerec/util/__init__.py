"""Small shared pieces: atomic file writes (fileio), locks, progress bars, device choice, the
name -> builder registry, and what a run directory holds (rundir)."""
