"""What counts as a node's code: its own definition, the definitions it names in its module,
whole project modules below that, and nothing else."""

import importlib

import pytest

from fednuclei.freshness.code import CodeIndex
from fednuclei.pipelines.training import nodes as training_nodes

NODES = '''
from toypkg.lib import helper
from toypkg import other

SCALE = 2


def first(x):
    """Scaled."""
    return helper(x) * SCALE  # the helper's own rule


def second(x):
    return other.unrelated() + x
'''


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    """A package ``toypkg`` with a node module, a helper module it uses and one it does not."""
    package = tmp_path / "toypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "lib.py").write_text("def helper(x):\n    return x + 1\n")
    (package / "other.py").write_text("def unrelated():\n    return 0\n")
    (package / "nodes.py").write_text(NODES)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toypkg.nodes")
    yield package, module
    for name in ("toypkg.nodes", "toypkg.lib", "toypkg.other", "toypkg"):
        importlib.sys.modules.pop(name, None)


def _parts(package, function):
    return CodeIndex(package_root=package, package="toypkg").parts_of(function)


def _edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_a_node_reaches_its_definitions_and_the_modules_it_names_only(toy_package):
    package, nodes = toy_package
    assert set(_parts(package, nodes.first)) == {"toypkg.nodes:first", "toypkg.nodes:SCALE", "toypkg.lib", "toypkg"}
    assert set(_parts(package, nodes.second)) == {"toypkg.nodes:second", "toypkg.other", "toypkg"}


def test_edits_change_the_nodes_that_reach_them_and_only_those(toy_package):
    package, nodes = toy_package
    first, second = _parts(package, nodes.first), _parts(package, nodes.second)
    _edit(package / "nodes.py", "return other.unrelated() + x", "return other.unrelated() - x")
    assert _parts(package, nodes.first) == first
    assert _parts(package, nodes.second) != second
    _edit(package / "nodes.py", '"""Scaled."""', '"""Scaled by SCALE."""')
    _edit(package / "nodes.py", "# the helper's own rule", "# see lib.py")
    assert _parts(package, nodes.first) == first  # docstrings and comments are not code
    _edit(package / "lib.py", "x + 1", "x + 2")
    assert _parts(package, nodes.first)["toypkg.lib"] != first["toypkg.lib"]
    _edit(package / "nodes.py", "SCALE = 2", "SCALE = 3")
    assert _parts(package, nodes.first)["toypkg.nodes:SCALE"] != first["toypkg.nodes:SCALE"]


def test_project_nodes_reach_the_library_they_use_and_not_third_party_code():
    index = CodeIndex()
    plot = index.parts_of(training_nodes.plot_client_scores)
    train = index.parts_of(training_nodes.train_global_model)
    assert "fednuclei.drawing" in plot and "fednuclei.federated.simulation" not in plot
    assert {"fednuclei.federated.simulation", "fednuclei.methods.fedmix"} <= set(train)
    assert not any(part.startswith(("torch", "pandas", "kedro")) for part in train)
    assert index.parts_of(len) == {"builtins:len": "external"}
