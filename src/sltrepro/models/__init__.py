"""Model families, one module each (dln, ...)."""
