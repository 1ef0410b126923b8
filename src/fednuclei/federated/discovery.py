"""Which node plays which client.

The server addresses nodes by id, but participation and weights are per client. Before the first
round (and again whenever the set of connected nodes changes) :func:`discover_clients` sends
every node an empty Flower ``query`` message; the ClientApp answers with the name of the client
it plays (from its node config: ``partition-id`` in simulation, ``client=...`` in deployment). Node ids are never
assumed to follow the partition order, so the same code serves simulation and deployment.
"""

from __future__ import annotations

import logging
import time

from flwr.app import Message, MessageType, RecordDict
from flwr.serverapp import Grid

from fednuclei.federated.protocol import CLIENT
from fednuclei.run_settings import RunSettings

logger = logging.getLogger(__name__)

NODE_POLL_SECONDS = 1.0


def discover_clients(grid: Grid, settings: RunSettings, timeout: float) -> dict[int, str]:
    """Which node id plays which client: one ``query`` message to every connected node.

    Waits (up to ``timeout`` seconds) until as many nodes as the run has clients are connected.

    Returns:
        node id -> client name, one entry per client of the run, in the run's client order.

    Raises:
        RuntimeError: too few nodes connected in time, or a node did not answer (with its error).
        ValueError: a node plays a client the run does not name, two nodes play one client, or a
            client has no node.
    """
    expected = len(settings.clients)
    deadline = time.monotonic() + timeout
    while len(nodes := sorted(grid.get_node_ids())) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(nodes)} of {expected} nodes connected after {timeout} s")
        logger.info("waiting for nodes: %d of %d connected", len(nodes), expected)
        time.sleep(NODE_POLL_SECONDS)
    messages = [Message(RecordDict(), dst_node_id=node, message_type=MessageType.QUERY) for node in nodes]
    replies = list(grid.send_and_receive(messages, timeout=timeout))
    failed = [f"node {msg.metadata.src_node_id}: {msg.error.reason[:300]}" for msg in replies if msg.has_error()]
    if failed or len(replies) < len(nodes):
        raise RuntimeError(f"{len(nodes) - len(replies) + len(failed)} of {len(nodes)} nodes did not say which "
                           f"client they play: {'; '.join(failed) or 'no reply before the timeout'}")
    played: dict[str, list[int]] = {}
    for msg in replies:
        played.setdefault(str(msg.content[CLIENT]["name"]), []).append(msg.metadata.src_node_id)
    unknown = sorted(set(played) - set(settings.clients))
    twice = sorted(name for name, ids in played.items() if len(ids) > 1)
    missing = [name for name in settings.clients if name not in played]
    if unknown or twice or missing:
        raise ValueError(f"nodes do not match the run's clients {list(settings.clients)}: unknown {unknown}, "
                         f"played by several nodes {twice}, without a node {missing}")
    mapping = {played[name][0]: name for name in settings.clients}
    logger.debug("nodes and clients: %s", mapping)
    return mapping
