"""Which nodes of a run are stale, and why.

A node is fresh when the manifest holds a record of it and, compared with that record, its
definition (function, bound arguments, input and output names), its code
(:mod:`fednuclei.freshness.code`, with the project classes of its datasets), the values of the
parameters it reads, the signatures of its inputs and of its outputs
(:mod:`fednuclei.freshness.signatures`) are all unchanged. A node is stale otherwise, and so is
every node downstream of a stale one in the same run.
"""

from __future__ import annotations

import functools
import inspect
import json
import re

from kedro.pipeline import Node, Pipeline

from fednuclei.freshness.code import PROJECT, CodeIndex
from fednuclei.freshness.files import digest
from fednuclei.freshness.manifest import Manifest
from fednuclei.freshness.signatures import Signer, unwrap

_MAX_NAMED = 3  # changed code parts named in one log line


def is_parameter(name: str) -> bool:
    """Whether a node input is a parameter (``params:...`` or ``parameters``) rather than a dataset."""
    return name.startswith("params:") or name == "parameters"


def _stable_repr(value: object) -> str:
    """``repr`` without memory addresses, which differ from one process to the next."""
    return re.sub(r" at 0x[0-9a-f]+", "", repr(value))


def definition(node: Node) -> str:
    """Digest of what the pipeline says a node is: its function, bound arguments, inputs, outputs."""
    function, bound = node.func, []
    while isinstance(function, functools.partial):
        bound.append([_stable_repr(function.args), _stable_repr(sorted(function.keywords.items()))])
        function = function.func
    function = inspect.unwrap(function)
    name = f"{getattr(function, '__module__', '')}:{getattr(function, '__qualname__', type(function).__qualname__)}"
    return digest(json.dumps({"function": name, "bound": bound, "inputs": node.inputs, "outputs": node.outputs}))


class Planner:
    """Fingerprints the nodes of one run against one manifest and decides which are stale."""

    def __init__(self, catalog, manifest: Manifest):
        self.signer = Signer(catalog)
        self._catalog = catalog
        self._manifest = manifest
        self._code = CodeIndex()
        self._class_parts: dict[type, dict[str, str]] = {}
        self._signatures: dict[tuple[str, str | None], str | None] = {}  # at planning time only

    def fingerprint(self, node: Node) -> dict:
        """The parts of a node's fingerprint known before it runs: ``node``, ``code``, ``params``."""
        code = dict(self._code.parts_of(node.func))
        for name in node.inputs + node.outputs:
            if not is_parameter(name):
                code.update(self._dataset_code(name))
        params = {name: self.signer.current(name) for name in node.inputs if is_parameter(name)}
        return {"node": definition(node), "code": code, "params": params}

    def plan(self, pipeline: Pipeline, rerun_all: bool) -> dict[str, tuple[dict, list[str]]]:
        """``{node name: (fingerprint, reasons)}`` in topological order; no reasons: fresh."""
        producers = {output: node.name for node in pipeline.nodes for output in node.outputs}
        decisions: dict[str, tuple[dict, list[str]]] = {}
        for node in pipeline.nodes:
            fingerprint = self.fingerprint(node)
            regenerated = {name: producers[name] for name in node.inputs
                           if name in producers and decisions[producers[name]][1]}
            if rerun_all:
                reasons = ["a full run was asked for (--all)"]
            else:
                reasons = self._changes(node, fingerprint, self._manifest.get(node.name), set(regenerated))
                if regenerated:
                    upstream = ", ".join(f"{producer} ({name})" for name, producer in regenerated.items())
                    reasons.append(f"upstream nodes run: {upstream}")
            decisions[node.name] = (fingerprint, reasons)
        return decisions

    def _changes(self, node: Node, fingerprint: dict, record: dict | None, regenerated: set[str]) -> list[str]:
        if record is None:
            return ["no record of an earlier run"]
        reasons = [self._dataset_change("output", name, record["outputs"].get(name)) for name in node.outputs]
        if fingerprint["node"] != record["node"]:
            reasons.append("its definition changed (function, arguments, inputs or outputs)")
        code = sorted(part for part in fingerprint["code"].keys() | record["code"].keys()
                      if fingerprint["code"].get(part) != record["code"].get(part))
        if code:
            more = f" and {len(code) - _MAX_NAMED} more" if len(code) > _MAX_NAMED else ""
            reasons.append(f"code changed: {', '.join(code[:_MAX_NAMED])}{more}")
        reasons += [f"parameter {name} changed" for name, value in fingerprint["params"].items()
                    if record["params"].get(name) != value]
        reasons += [self._dataset_change("input", name, record["inputs"].get(name)) for name in node.inputs
                    if not is_parameter(name) and name not in regenerated]
        return [reason for reason in reasons if reason]

    def _dataset_change(self, role: str, name: str, recorded: str | None) -> str | None:
        """Why input or output ``name`` no longer matches its record; None when it does."""
        now = self._signature(name, recorded)
        if now is None:
            return f"{role} {self.signer.absence(name)}"
        return f"{role} {name} changed" if now != recorded else None

    def _signature(self, name: str, recorded: str | None) -> str | None:
        if (name, recorded) not in self._signatures:
            self._signatures[name, recorded] = self.signer.current(name, recorded)
        return self._signatures[name, recorded]

    def _dataset_code(self, name: str) -> dict[str, str]:
        """Code of the project classes that load or save dataset ``name``."""
        dataset = unwrap(self._catalog.get(name, fallback_to_runtime_pattern=True))
        parts: dict[str, str] = {}
        for cls in type(dataset).__mro__:
            if cls.__module__.partition(".")[0] == PROJECT:
                if cls not in self._class_parts:
                    self._class_parts[cls] = self._code.parts_of(cls)
                parts.update(self._class_parts[cls])
        return parts
