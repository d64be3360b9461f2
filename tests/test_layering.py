"""The package's imports point down the layer map of docs/contributing.md.

Every ``import`` and ``from ... import`` in the package is read with ``ast``,
including imports inside functions, so a lazy import cannot hide an upward
dependency. A module may import modules of a lower layer, and modules of its
own layer only where the table below allows it; the import graph has no cycle.
"""

from __future__ import annotations

import ast
import pathlib
import re

import networkx as nx
import pytest

import deepreservoir

PACKAGE = pathlib.Path(deepreservoir.__file__).parent

#: Layer of every module (a prefix covers a subpackage), lowest first. Keep in sync
#: with the table in docs/contributing.md (a test checks that too).
LAYERS: dict[str, int] = {
    # 0: foundation
    "deepreservoir._version": 0, "deepreservoir.errors": 0, "deepreservoir.constraints": 0,
    "deepreservoir.exactmath": 0, "deepreservoir.seeding": 0, "deepreservoir.families": 0,
    "deepreservoir.spectral": 0, "deepreservoir.functional": 0, "deepreservoir.data": 0,
    "deepreservoir.kinds": 0, "deepreservoir.lora": 0, "deepreservoir.composition": 0,
    "deepreservoir.threads": 0, "deepreservoir.datasets": 0, "deepreservoir.data_files": 0,
    "deepreservoir._extras": 0, "deepreservoir._processes": 0,
    "deepreservoir.step_kernels": 0, "deepreservoir.seeding_torch": 0,
    "deepreservoir.frozen_weight": 0, "deepreservoir.exactmath_torch": 0,
    "deepreservoir.virtual_linear": 0,
    # 1: nodes
    "deepreservoir.nodes": 1, "deepreservoir.adapt": 1, "deepreservoir.adapt_layers": 1,
    # 2: structure
    "deepreservoir.graph": 2,
    # 3: execution
    "deepreservoir.executor": 3,
    # 4: training, artifacts, analysis
    "deepreservoir.io": 4, "deepreservoir.adapt_io": 4, "deepreservoir.training": 4,
    "deepreservoir.analysis": 4, "deepreservoir.footprint": 4, "deepreservoir.generation": 4,
    # 5: the user's model
    "deepreservoir.model": 5, "deepreservoir.esn": 5,
    # 6: entry points
    "deepreservoir": 6, "deepreservoir.__main__": 6, "deepreservoir.cli": 6,
    "deepreservoir.cli_report": 6, "deepreservoir.demo": 6, "deepreservoir.studies": 6,
    "deepreservoir.sweep": 6, "deepreservoir.sweep_config": 6, "deepreservoir.cluster": 6,
    "deepreservoir.cell_engine": 6, "deepreservoir.hyperparameters": 6,
    "deepreservoir.experiment": 6, "deepreservoir.experiment_config": 6,
    "deepreservoir.experiment_data": 6, "deepreservoir.experiment_sweep": 6,
    "deepreservoir.search": 6, "deepreservoir.distributed": 6,
}

#: Imports allowed between different groups of one layer (group = the entry of LAYERS).
SAME_LAYER: set[tuple[str, str]] = {
    ("deepreservoir.training", "deepreservoir.io"),  # checkpoints are artifacts
    ("deepreservoir.analysis", "deepreservoir.training"),  # rank sweeps train models
    ("deepreservoir.esn", "deepreservoir.model"),  # an ESN is a Model
    ("deepreservoir.adapt", "deepreservoir.adapt_layers"),  # adapt installs these layers
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in MODULES else None


def _imports(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    found: set[str] = set()
    package = module if MODULES[module].name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = []
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.append(submodule if submodule in MODULES else base)
        else:
            continue
        for target in targets:
            if target.startswith("deepreservoir"):
                resolved = _resolve(target)
                if resolved is not None and resolved != module:
                    found.add(resolved)
    return found


def _group(module: str) -> str:
    best = max((key for key in LAYERS if module == key or module.startswith(key + ".")),
               key=len, default=None)
    if best is None:
        raise AssertionError(f"module {module} has no layer in LAYERS; add it (and to "
                             f"docs/contributing.md)")
    return best


def _graph() -> nx.DiGraph:
    graph = nx.DiGraph()
    for module in MODULES:
        graph.add_node(module)
        for target in _imports(module):
            graph.add_edge(module, target)
    return graph


def test_every_module_has_a_layer():
    for module in MODULES:
        _group(module)


def test_imports_point_down_the_layer_map():
    violations = []
    for source, target in _graph().edges:
        a, b = _group(source), _group(target)
        if LAYERS[b] < LAYERS[a] or a == b or (a, b) in SAME_LAYER:
            continue
        if LAYERS[a] == LAYERS[b] == 0 or LAYERS[a] == LAYERS[b] == 6:
            continue  # foundation and entry points: acyclicity below is the rule
        violations.append(f"{source} (layer {LAYERS[a]}) imports {target} (layer {LAYERS[b]})")
    assert not violations, "\n".join(violations)


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    graph.remove_node("deepreservoir")  # the package root re-exports; nothing imports it back
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    pytest.fail(f"import cycle: {cycle}")


def test_nothing_below_the_entry_points_imports_the_package_root():
    offenders = [m for m in MODULES if LAYERS[_group(m)] < 6 and "deepreservoir" in _imports(m)]
    assert not offenders, offenders


def test_the_contributor_docs_list_the_same_layers():
    text = (PACKAGE.parent / "docs" / "contributing.md").read_text()
    for group, layer in LAYERS.items():
        pattern = rf"\|\s*{layer}\s*\|[^\n]*`{re.escape(group)}`"
        assert re.search(pattern, text), f"docs/contributing.md misses `{group}` in layer {layer}"


def test_a_planted_upward_import_is_caught(tmp_path, monkeypatch):
    planted = tmp_path / "deepreservoir" / "nodes" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("def f():\n    from deepreservoir.model import Model\n    return Model\n")
    monkeypatch.setitem(MODULES, "deepreservoir.nodes.planted", planted)
    with pytest.raises(AssertionError, match="planted"):
        test_imports_point_down_the_layer_map()
