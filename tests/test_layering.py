"""The core's layers import downwards only, and the core names no task, model, data set
or strategy: built-ins are plugins like any other.

Layers, from the bottom: the contract (`api.py`, a leaf) and the foundation modules
beside it; `results/` (records, store, merge, run kinds); `report/` (reads records
alone); `plan/` (suite, matrix, planner); `run/` (workers, engine, executors); and on
top the commands that tie them together (`cli`, `runner`, `progress`, `training`, `site/`,
`testing/`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "tlbench"

TOP = {"cli", "runner", "progress", "training", "testing", "site", "__main__"}
MAY_NOT_IMPORT = {
    "foundation": {"plan", "run", "results", "report", "top"},
    "results": {"plan", "run", "report", "top"},
    "report": {"plan", "run", "top"},
    "plan": {"run", "report", "top"},
    "run": {"report", "top"},
    "top": set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(CORE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2:
        return "foundation"
    head = parts[1]
    if head in ("plan", "run", "results", "report"):
        return head
    return "top" if head in TOP else "foundation"


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every tlbench module `path` imports (resolved), with its line, wherever the import is."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.startswith("tlbench")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("tlbench"):
                names = [f"{target}.{alias.name}" for alias in node.names]
                found += [(name if (CORE.parent / (name.replace(".", "/") + ".py")).exists()
                           or (CORE.parent / name.replace(".", "/")).is_dir() else target, node.lineno)
                          for name in names]
    return found


CORE_FILES = sorted(CORE.rglob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(CORE)))
def test_no_layer_imports_a_higher_one(path):
    layer = layer_of(module_name(path))
    wrong = [(target, line) for target, line in imports_of(path) if layer_of(target) in MAY_NOT_IMPORT[layer]]
    assert not wrong, f"{path.relative_to(CORE.parent)} ({layer}) imports " + ", ".join(
        f"{target} ({layer_of(target)}) at line {line}" for target, line in wrong)


def test_the_contract_is_a_leaf():
    """api.py imports nothing of tlbench at run time (Param only for type checkers)."""
    tree = ast.parse((CORE / "api.py").read_text(encoding="utf-8"))
    checking = [node for node in ast.walk(tree) if isinstance(node, ast.If)
                and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"]
    allowed = {id(inner) for block in checking for inner in ast.walk(block)}
    runtime = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and (node.level or (node.module or "").startswith("tlbench")) and id(node) not in allowed]
    assert runtime == [], f"tlbench/api.py imports tlbench modules at lines {runtime}"


def test_the_layering_test_sees_a_violation(tmp_path):
    """The check itself works: a report module importing the planner is caught."""
    bad = CORE / "report" / "_probe_layering.py"
    bad.write_text("from ..plan.matrix import RunSpec\n", encoding="utf-8")
    try:
        assert [t for t, _ in imports_of(bad) if layer_of(t) in MAY_NOT_IMPORT["report"]] == ["tlbench.plan.matrix"]
    finally:
        bad.unlink()


def builtin_names() -> dict[str, set[str]]:
    """The names the built-in plugins register, by kind (what the core must not name)."""
    from tlbench.plugins import PluginRegistry

    registry = PluginRegistry.load()
    names: dict[str, set[str]] = {}
    for kind in ("task", "target", "strategy", "estimator"):
        names[kind] = {reg.name for reg in registry.items(kind) if reg.origin.builtin}
    return names


LEGACY = {"api.py": {"classification"}, "results/records.py": {"classification", "accuracy"}}
"""What the core may say: the task (and its metric) that plugins and records from before
task types (tlbench 0.1) implicitly have."""
MODELS = ("resnet", "vit_", "bert", "roberta", "gpt", "whisper", "wav2vec", "efficientnet", "vgg", "yolo",
          "imagenet", "cifar", "mnist", "coco")


def string_constants(path: Path) -> list[tuple[str, int]]:
    """Every string literal of a module's code, docstrings left out (prose may mention a
    built-in; code may not single one out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    docstrings |= {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)
                   and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)}
    return [(node.value, node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_core_names_no_task_model_data_set_or_strategy():
    names = set().union(*builtin_names().values()) | {"accuracy"}
    found = []
    for path in CORE_FILES:
        relative = str(path.relative_to(CORE))
        for value, line in string_constants(path):
            named = {value} & (names - LEGACY.get(relative, set()))
            named |= {model for model in MODELS if model in value.lower()}
            found += [f"{relative}:{line} names {name!r} in {value!r}" for name in sorted(named)]
    assert not found, "\n".join(found)


PUBLIC = {"tlbench", "tlbench.api", "tlbench.params", "tlbench.errors", "tlbench.training", "tlbench.hashing",
          "tlbench.testing", "tlbench.audio"}
PLUGIN_FILES = sorted((CORE.parent / "plugins").rglob("*.py"))


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(CORE.parent)))
def test_plugins_import_only_the_public_surface(path):
    """Built-ins load exactly like third-party plugins, so they use only what those may."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    used = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    used |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and not node.level
             and node.module}
    private = sorted(name for name in used if name.split(".")[0] == "tlbench" and name not in PUBLIC)
    assert not private, f"{path.relative_to(CORE.parent)} imports tlbench internals: {', '.join(private)}"
