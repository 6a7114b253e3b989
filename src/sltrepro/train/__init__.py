"""Training loops, one module per family."""
