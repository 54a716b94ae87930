"""Hook specifications: the functions a tlbench plugin may implement.

Each hook receives a ``register`` callable and calls it once per item it provides;
tlbench validates the item, refuses duplicate names and remembers which plugin
registered it. Hooks must be cheap: no torch, timm or transformers imports here.

Every hook is documented in ``docs/plugins.md`` under a heading that is its exact
signature (a test keeps the two in step). Names starting with ``tlbench_`` are
reserved for hooks: a plugin defining another one is reported as misspelled.
"""

import pluggy

from . import PROJECT

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def tlbench_register_sources(register):
    """Register source models.

    :param register: call ``register(source)`` with an instance of a
        `tlbench.api.Source` subclass, once per source.
    """


@hookspec
def tlbench_register_targets(register):
    """Register target tasks.

    :param register: call ``register(target)`` with an instance of a
        `tlbench.api.Target` subclass, once per target.
    """


@hookspec
def tlbench_register_tasks(register):
    """Register task types: what a target's labels are, the head and loss that train on
    them, and the metrics their predictions get.

    :param register: call ``register(task)`` with an instance of a
        `tlbench.api.Task` subclass, once per task type.
    """


@hookspec
def tlbench_register_strategies(register):
    """Register transfer strategies.

    :param register: call ``register(strategy)`` with an instance of a
        `tlbench.api.Strategy` subclass, once per strategy.
    """


@hookspec
def tlbench_register_estimators(register):
    """Register transferability estimators.

    :param register: call ``register(estimator)`` with an instance of a
        `tlbench.api.Estimator` subclass, once per estimator.
    """
