"""ingest -> instance masks -> clients and splits -> labels per client -> patches.

Client data comes in two label views, each a namespace with the same nodes:

* ``supervised``: each client holds what its supervision level allows (a ``bbox`` client: boxes,
  no masks). Mixed-supervision methods train on this view.
* ``full``: every client keeps its pixel masks: the fully supervised reference for FedAvg, local
  and centralized training.
"""

from kedro.pipeline import Node, Pipeline, pipeline

from fednuclei.data.partition import LABEL_VIEWS

from .nodes import assign_clients, cut_training_patches, ingest_tiles, partition_clients, select_evaluation_tiles


def label_view(view: str) -> Pipeline:
    template = Pipeline(
        [
            Node(
                partition_clients,
                ["tiles", "tile_manifest", "params:labels"],
                "client_partitions",
                name="partition_clients",
            ),
            Node(cut_training_patches, ["client_partitions", "params:patches"], "client_patches", name="cut_training_patches"),
        ]
    )
    return pipeline(template, namespace=view, inputs={"tiles", "tile_manifest"}, parameters={"params:patches"})


def create_pipeline(**kwargs) -> Pipeline:
    shared = Pipeline(
        [
            Node(ingest_tiles, "raw_tiles", "tiles", name="ingest_tiles"),
            Node(assign_clients, ["tiles", "params:clients", "params:splits"], "tile_manifest", name="assign_clients"),
            Node(select_evaluation_tiles, ["tiles", "tile_manifest"], "evaluation_tiles", name="select_evaluation_tiles"),
        ]
    )
    return shared + sum(label_view(view) for view in LABEL_VIEWS)
