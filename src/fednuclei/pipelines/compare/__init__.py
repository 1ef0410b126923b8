"""Every method on the same clients and budget, and one table that compares them."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
