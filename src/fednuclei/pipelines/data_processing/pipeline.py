"""ingest -> instance masks -> clients and splits -> weak labels per client -> patches."""

from kedro.pipeline import Node, Pipeline

from .nodes import assign_clients, cut_training_patches, ingest_tiles, partition_clients


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(ingest_tiles, "raw_tiles", "tiles", name="ingest_tiles"),
            Node(
                assign_clients,
                ["tiles", "params:clients", "params:splits"],
                "tile_manifest",
                name="assign_clients",
            ),
            Node(
                partition_clients,
                ["tiles", "tile_manifest"],
                ["client_partitions", "evaluation_tiles"],
                name="partition_clients",
            ),
            Node(
                cut_training_patches,
                ["client_partitions", "params:patches"],
                "client_patches",
                name="cut_training_patches",
            ),
        ]
    )
