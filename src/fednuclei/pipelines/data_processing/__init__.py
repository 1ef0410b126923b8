"""Raw sources to clients: ingest, manifest, partitions, patches."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
