"""docs/plugins.md documents every hook under a heading that is its exact signature,
each hook's example runs and passes the conformance kit, and the tutorial, followed
literally from an empty folder, ends with `tlbench list` showing the plugin."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, run_cli
from tlbench.plugins import HOOK_KINDS, PluginRegistry, hook_specs

DOCS = REPO / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)


def sections() -> dict[str, str]:
    """Level-2 headings (backticks removed) and the text under each."""
    parts = re.split(r"^## +(.+?) *$", DOCS.read_text(encoding="utf-8"), flags=re.M)
    return {heading.replace("`", ""): body for heading, body in zip(parts[1::2], parts[2::2])}


def signature(hook: str) -> str:
    return f"{hook}({', '.join(hook_specs()[hook].parameters)})"


def test_every_hook_has_a_heading_that_is_its_exact_signature():
    headings = sections()
    missing = [signature(hook) for hook in hook_specs() if signature(hook) not in headings]
    assert not missing, (f"{DOCS.relative_to(REPO)} does not document these hooks; add a section "
                         f"'## {missing[0]}' with its arguments, what to register and a runnable example")


def test_every_documented_hook_exists_with_that_signature():
    documented = [h for h in sections() if h.startswith("tlbench_")]
    assert documented, "no hook headings found"
    real = {signature(hook) for hook in hook_specs()}
    assert [h for h in documented if h not in real] == []


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_hook_section_explains_arguments_and_has_a_runnable_example(hook, tmp_path, monkeypatch):
    body = sections()[signature(hook)]
    assert "**Arguments**" in body and "**What to register.**" in body
    for argument in hook_specs()[hook].parameters:
        assert f"`{argument}`" in body, f"argument {argument!r} of {hook} is not explained"
    examples = [code for language, _, code in FENCE.findall(body) if language == "python"]
    assert examples, f"the {hook} section has no python example"

    module = f"docs_example_{hook}"
    (tmp_path / f"{module}.py").write_text(examples[0], encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    # the example alone, beside the built-in task its targets and strategies are checked on
    registry = PluginRegistry.load(["tlbench_builtin.classification", module], use_entry_points=False, strict=True)
    kind = HOOK_KINDS.get(hook)
    if kind is None:
        return  # a hook that registers no item kind: loading it without problems is the check
    [registered] = [reg for reg in registry.items(kind) if reg.origin.plugin == module]
    from tlbench import testing

    if kind == "task":  # a task is checked on the target the example registers with it
        [target] = [reg for reg in registry.items("target") if reg.origin.plugin == module]
        testing.check_task(registered.name, target=target.name, registry=registry, cache_dir=tmp_path / "cache")
        return
    check = {"source": testing.check_source, "target": testing.check_target,
             "strategy": testing.check_strategy, "estimator": testing.check_estimator}[kind]
    check(registered.name, registry=registry, cache_dir=tmp_path / "cache")


def files_in(text: str) -> dict[str, str]:
    return {match.group(2).split("file=")[1].strip(): match.group(3)
            for match in FENCE.finditer(text) if "file=" in match.group(2)}


def tutorial_files() -> dict[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    return files_in(text[text.index("## Tutorial"):text.index("## Hooks")])


def pip_install(folder, site) -> None:
    """`pip install .` as the tutorial says, into a private directory and offline."""
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", *isolation,
                              "--target", str(site), str(folder)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr


def test_tutorial_from_an_empty_folder_to_tlbench_list(tmp_path):
    files = tutorial_files()
    assert {"pyproject.toml", "tlbench_hello.py", "tests/test_hello.py"} <= set(files)
    folder, site = tmp_path / "tlbench-hello", tmp_path / "site"
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content, encoding="utf-8")

    pip_install(folder, site)

    env = {"PYTHONPATH": str(site), "TLBENCH_STRICT_PLUGINS": "", "TLBENCH_DISABLE_PLUGINS": ""}
    listing = run_cli("list", env=env, timeout=300)
    assert listing.returncode == 0, listing.stderr
    [line] = [line for line in listing.stdout.splitlines() if line.split()[:1] == ["class-prior"]]
    assert "[tlbench-hello 0.1.0]" in line
    assert "tlbench-hello" not in listing.stderr

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                           cwd=folder, capture_output=True, text=True, timeout=600,
                           env={**os.environ, **env})
    assert tests.returncode == 0, tests.stdout[-3000:]


def test_a_task_type_written_from_the_docs_installs_conforms_and_runs(tmp_path):
    """The worked task type of the docs, packaged as the tutorial packages a plugin:
    `tlbench list` shows it, `check_task` passes, and a suite on its target runs end to
    end, ranked by the task's own headline (MAE, lowest first), the linear probe left out."""
    text = DOCS.read_text(encoding="utf-8")
    files = files_in(text[text.index("## tlbench_register_tasks"):text.index("## tlbench_register_strategies")])
    assert {"tlbench_counting.py", "suite.toml"} <= set(files)
    folder, site = tmp_path / "tlbench-counting", tmp_path / "site"
    folder.mkdir()
    (folder / "tlbench_counting.py").write_text(files["tlbench_counting.py"], encoding="utf-8")
    pyproject = tutorial_files()["pyproject.toml"].replace("tlbench-hello", "tlbench-counting")
    pyproject = pyproject.replace('hello = "tlbench_hello"', 'counting = "tlbench_counting"')
    (folder / "pyproject.toml").write_text(pyproject.replace("tlbench_hello", "tlbench_counting"), encoding="utf-8")
    pip_install(folder, site)
    env = {"PYTHONPATH": str(site), "TLBENCH_STRICT_PLUGINS": "1", "TLBENCH_DISABLE_PLUGINS": "",
           "TLBENCH_CACHE_DIR": str(tmp_path / "cache")}

    listing = run_cli("list", env=env, timeout=300)
    assert listing.returncode == 0, listing.stderr
    tasks = listing.stdout[listing.stdout.index("tasks ("):listing.stdout.index("strategies (")]
    assert "count" in tasks and "[tlbench-counting 0.1.0]" in tasks

    check = subprocess.run([sys.executable, "-c", "from tlbench.testing import check_task; "
                            "print(check_task('count', target='dot-count', epochs=1))"],
                           capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert check.returncode == 0, check.stderr[-3000:]

    (tmp_path / "suite.toml").write_text(files["suite.toml"], encoding="utf-8")
    run = run_cli("run", str(tmp_path / "suite.toml"), "--out", str(tmp_path / "out"), env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "left out" in run.stderr and "linear-probe fits linear heads in closed form" in run.stderr
    assert "test mae" in run.stdout
    import pandas as pd

    rows = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(rows["task"]) == {"count"} and set(rows["metric"]) == {"mae"} and rows["test_mae"].notna().all()
    assert (rows["higher_is_better"] == False).all()  # noqa: E712 (a column of numpy booleans)
    ranked = [line for line in run.stdout.splitlines() if line.startswith("| 1 ")]
    best = rows.groupby("strategy")["test_mae"].mean().idxmin()
    assert ranked and best in ranked[0]
