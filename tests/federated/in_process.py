"""A federation in one process: the real ServerApp and ClientApp, without Ray or a SuperLink."""

from __future__ import annotations

import copy
from collections.abc import Callable
from types import SimpleNamespace

from flwr.app import Context, Message, RecordDict


class InProcessGrid:
    """Nodes ``100, 101, ...`` playing the clients in order, running the real ClientApp here,
    each with its own context for the run (as a SuperNode keeps it); keeps every message both
    ways in ``exchanged``.

    ``drop(message, client name)`` says which messages get no reply (a hung or dead client).
    """

    def __init__(self, app, clients: tuple[str, ...], drop: Callable[[Message, str], bool] | None = None):
        self.app, self.clients, self.drop = app, clients, drop or (lambda msg, client: False)
        self.nodes = {100 + k: k for k in range(len(clients))}
        self.contexts = {node: Context(run_id=1, node_id=node, node_config={"partition-id": k}, state=RecordDict(),
                                       run_config={}) for node, k in self.nodes.items()}
        self.run = SimpleNamespace(run_id=1)
        self.exchanged: list[tuple[str, Message]] = []
        self.waits: list[tuple[str, float | None]] = []  # message type and timeout of each exchange

    def get_node_ids(self):
        return list(self.nodes)

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        self.waits.append((messages[0].metadata.message_type, timeout))
        replies = []
        for msg in messages:
            node = msg.metadata.dst_node_id
            self.exchanged.append(("sent", msg))
            if self.drop(msg, self.clients[self.nodes[node]]):
                continue
            # A copy, as a transport delivers: Flower's SecAgg+ sends one content to every node, and
            # its client mod consumes what it reads.
            reply = self.app(copy.deepcopy(msg), self.contexts[node])
            self.exchanged.append(("received", reply))
            replies.append(reply)
        return replies
