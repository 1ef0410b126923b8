"""K seeded augmented copies of every training tile, a contact sheet, and their patches."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
