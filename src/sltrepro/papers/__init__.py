"""One subpackage per reproduced paper; each exposes ``STEPS``."""
