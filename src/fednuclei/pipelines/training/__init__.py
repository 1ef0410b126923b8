"""One training-and-evaluation template, instantiated per method under the method's namespace."""

from .pipeline import create_method_pipeline, create_pipeline, end_to_end

__all__ = ["create_method_pipeline", "create_pipeline", "end_to_end"]
