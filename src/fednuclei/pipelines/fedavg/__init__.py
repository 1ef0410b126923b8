"""FedAvg on Flower: each round every client trains from the global weights, the server averages them weighted by training-set size."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
