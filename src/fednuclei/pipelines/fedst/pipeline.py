"""The ``fedst`` pipeline: data preparation, then the training template under ``fedst``."""

from kedro.pipeline import Pipeline

from ..training import end_to_end


def create_pipeline(**kwargs) -> Pipeline:
    return end_to_end("fedst")
