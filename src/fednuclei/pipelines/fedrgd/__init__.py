"""FedRGD: FedST's local training with seeded random participation each round; pixel clients keep a fixed trust share."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
