"""FedMix (Wicaksana et al., IEEE TMI 2023): two global models, agreement-based pseudo-labels for weakly labelled clients, cross pseudo-supervision, adaptive aggregation."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
