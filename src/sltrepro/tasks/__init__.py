"""Data sets and task samplers, one module per family."""
