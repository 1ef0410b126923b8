"""Training tiles -> augmented copies -> contact sheet and augmented patches."""

from kedro.pipeline import Node, Pipeline

from ..data_processing.nodes import cut_training_patches
from .nodes import augment_training_tiles, draw_contact_sheet


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                augment_training_tiles,
                ["client_partitions", "params:augmentation"],
                "augmented_partitions",
                name="augment_training_tiles",
            ),
            Node(
                draw_contact_sheet,
                ["client_partitions", "augmented_partitions"],
                "augmentation_contact_sheet",
                name="draw_contact_sheet",
            ),
            Node(
                cut_training_patches,
                ["augmented_partitions", "params:patches"],
                "augmented_patches",
                name="cut_augmented_patches",
            ),
        ]
    )
