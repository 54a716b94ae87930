"""Conformance checks for plugin authors: does a source, target, task, strategy or
estimator keep tlbench's contract?

Each check raises `AssertionError` with a message naming the item and what is wrong,
so it works from pytest and from a plain script::

    from tlbench.testing import check_source, check_strategy, check_target, check_task

    check_source("my-source", {"width": 8})
    check_target("my-target", {"shots": 2})
    check_task("my-task", target="my-target")
    check_strategy("my-strategy", {"epochs": 1})

Items are named (looked up among the installed plugins, which also proves the entry
point works and that importing the plugin stays light) or passed as instances.
`check_strategy` and `check_estimator` run the recipe through tlbench's own execution
path (a `RunSpec` with its run identity, executed by a `Worker`) on a tiny source and
target: the kit's own `TinySource` and `TinyTarget` unless others are given.
`run_context` gives a unit test the context a strategy sees.
"""

from .items import check_item, heavy_imports, installed_plugins, resolve
from .runs import StrategyCheck, check_estimator, check_strategy, run_context
from .sources import check_layer_groups, check_representations, check_source, check_source_model, sample_examples
from .targets import check_splits, check_target, check_target_data
from .tasks import check_task
from .tiny import TinySource, TinyTarget, encode_images

__all__ = ["check_item", "check_source", "check_source_model", "check_layer_groups", "check_representations",
           "check_target", "check_target_data", "check_splits", "check_task", "check_strategy", "check_estimator",
           "StrategyCheck", "TinySource", "TinyTarget", "encode_images", "sample_examples", "installed_plugins",
           "heavy_imports", "resolve", "run_context"]
