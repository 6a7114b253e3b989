"""sltrepro: reproduce singular-learning-theory papers from shared, tested code."""

__version__ = "0.1.0"
