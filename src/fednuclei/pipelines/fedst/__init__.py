"""FedST: warm-up rounds with the pixel-labelled clients, then confidence-masked self-training on gamma-perturbed copies for the others; pixel clients keep a fixed trust share."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
