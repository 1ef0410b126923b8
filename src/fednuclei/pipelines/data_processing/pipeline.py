"""ingest -> registry of when each tile first appeared -> clients and splits -> labels per client -> patches.

Each client's tiles come in two parts: those of the first stage (``client_partitions``,
``client_patches``) and those an incremental stage adds (``incremental_partitions``,
``incremental_patches``: every tile of a client that joins later, and tiles that arrived in a raw
source after the first run). New data leaves the first part as it was.

Client data comes in two label views, each a namespace with the same nodes:

* ``supervised``: each client holds what its supervision level allows (a ``bbox`` client: boxes,
  no masks). Mixed-supervision methods train on this view.
* ``full``: every client keeps its pixel masks: the fully supervised reference for FedAvg, local
  and centralized training.
"""

from kedro.pipeline import Node, Pipeline, pipeline

from fednuclei.data.partition import LABEL_VIEWS

from .nodes import (
    assign_clients,
    cut_training_patches,
    ingest_tiles,
    partition_clients,
    select_evaluation_tiles,
    tile_names,
)


def label_view(view: str) -> Pipeline:
    template = Pipeline(
        [
            Node(
                partition_clients,
                ["tiles", "tile_manifest", "params:labels"],
                ["client_partitions", "incremental_partitions"],
                name="partition_clients",
            ),
            Node(cut_training_patches, ["client_partitions", "params:patches"], "client_patches",
                 name="cut_training_patches"),
            Node(cut_training_patches, ["incremental_partitions", "params:patches"], "incremental_patches",
                 name="cut_incremental_patches"),
        ]
    )
    return pipeline(template, namespace=view, inputs={"tiles", "tile_manifest"}, parameters={"params:patches"})


def create_pipeline(**kwargs) -> Pipeline:
    shared = Pipeline(
        [
            Node(ingest_tiles, ["raw_tiles", "params:clients", "params:patches"], "tiles", name="ingest_tiles"),
            Node(tile_names, "tiles", "tile_registry", name="register_tiles"),
            Node(assign_clients, ["tiles", "tile_registry", "params:clients", "params:splits"], "tile_manifest",
                 name="assign_clients"),
            Node(select_evaluation_tiles, ["tiles", "tile_manifest"], "evaluation_tiles", name="select_evaluation_tiles"),
        ]
    )
    return shared + sum(label_view(view) for view in LABEL_VIEWS)
