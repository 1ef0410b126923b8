"""Every method on the same clients and budget, and one table that compares them."""

from .pipeline import COMPARED, create_pipeline

__all__ = ["COMPARED", "create_pipeline"]
