"""Training tiles -> augmented copies -> their patches, in both label views; a contact sheet."""

from kedro.pipeline import Node, Pipeline, pipeline

from fednuclei.data.partition import LABEL_VIEWS

from ..data_processing.nodes import cut_training_patches
from .nodes import augment_training_tiles, draw_contact_sheet

# The first stage's tiles and those an incremental stage adds are augmented apart, so that new
# data leaves the first stage's copies as they were.
PARTS = {"": "client_partitions", "incremental_": "incremental_partitions"}


def label_view(view: str) -> Pipeline:
    template = Pipeline([
        node
        for prefix, partitions in PARTS.items()
        for node in (
            Node(augment_training_tiles, [partitions, "params:augmentation"], f"{prefix}augmented_partitions",
                 name=f"augment_{prefix}training_tiles"),
            Node(cut_training_patches, [f"{prefix}augmented_partitions", "params:patches"], f"{prefix}augmented_patches",
                 name=f"cut_{prefix}augmented_patches"),
        )
    ])
    return pipeline(template, namespace=view, parameters={"params:patches", "params:augmentation"})


def create_pipeline(**kwargs) -> Pipeline:
    sheet = pipeline([Node(draw_contact_sheet, ["client_partitions", "augmented_partitions"],
                           "augmentation_contact_sheet", name="draw_contact_sheet")],
                     namespace="supervised", outputs={"augmentation_contact_sheet"})
    return sum(label_view(view) for view in LABEL_VIEWS) + sheet
