"""FedAvg restricted to the pixel-labelled clients: the fair baseline for mixed supervision (weakly labelled clients hold no masks and get weight 0)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
