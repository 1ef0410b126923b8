"""The ``fedavg_pixel`` pipeline: data preparation, then the training template under ``fedavg_pixel``."""

from kedro.pipeline import Pipeline

from ..training import end_to_end


def create_pipeline(**kwargs) -> Pipeline:
    return end_to_end("fedavg_pixel")
