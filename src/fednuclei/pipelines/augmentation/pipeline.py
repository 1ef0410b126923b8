"""Training tiles -> augmented copies -> their patches, in both label views; a contact sheet."""

from kedro.pipeline import Node, Pipeline, pipeline

from fednuclei.data.partition import LABEL_VIEWS

from ..data_processing.nodes import cut_training_patches
from .nodes import augment_training_tiles, draw_contact_sheet


def label_view(view: str) -> Pipeline:
    template = Pipeline(
        [
            Node(
                augment_training_tiles,
                ["client_partitions", "params:augmentation"],
                "augmented_partitions",
                name="augment_training_tiles",
            ),
            Node(
                cut_training_patches,
                ["augmented_partitions", "params:patches"],
                "augmented_patches",
                name="cut_augmented_patches",
            ),
        ]
    )
    return pipeline(template, namespace=view, parameters={"params:patches", "params:augmentation"})


def create_pipeline(**kwargs) -> Pipeline:
    sheet = Pipeline(
        [
            Node(
                draw_contact_sheet,
                ["supervised.client_partitions", "supervised.augmented_partitions"],
                "augmentation_contact_sheet",
                name="draw_contact_sheet",
            )
        ]
    )
    return sum(label_view(view) for view in LABEL_VIEWS) + sheet
