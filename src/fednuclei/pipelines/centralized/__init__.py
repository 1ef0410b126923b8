"""Centralized training: one model on every client's patches pooled, same budget (the upper bound)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
