"""Local learning: each client trains alone on the same budget (the lower bound, and the cross-site Dice matrix)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
