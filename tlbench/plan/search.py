"""The selection protocol: search trials on validation, then final runs of the choice.

A strategy entry with a search space (`tlbench.plan.grids`) is not run as written. For
each cell (source, target, entry) of the suite:

1. **trials**: every configuration of the space is trained on the training split at the
   search seeds (``suite.search_seeds``, by default the first seed) and scored on the
   validation split. A trial is given no test split at all, so no test label, nor a
   test example, can reach it or the choice (`results.kinds`: ``withholds_test``).
   Trials are ordinary records of kind ``trial``: resumed, budgeted and scheduled like
   runs, and shared by every search whose space holds their configuration.
2. **choice**: the configuration with the best validation headline, averaged over the
   search seeds; the score is the one the trial's strategy reports on validation at the
   checkpoint it selected (its best epoch when it selects on validation, else its
   last). Ties go to the cheaper configuration (fewer trainable parameters × training
   steps), then to the one written first. A failed trial is not eligible; a
   configuration counts only when all its seeds finished.
3. **finals**: the chosen configuration is retrained with every seed of the suite, on
   train+val by default (VTAB's protocol: ``suite.refit = "train+val"``; with no
   validation split left it keeps its last epoch) or on train alone, and tested. A
   final is a run like any other (leaderboards, NT), whose identity adds the protocol
   (space, refit, trial seeds) and whose record names the choice and every trial.

With ``refit = "train+val"`` every run of the suite, searched or not, trains on
train+val: a strategy compared with a tuned baseline (or another tuned strategy) that
trained on fewer examples would be compared unfairly, and a learning curve would mix
two data sizes. Its identity carries the protocol with an empty space. What such a run
would have selected on validation (a checkpoint, a probe's strength) it cannot: search
it instead.

The choice depends on records, so finals are made once their trials are recorded
(`choose_finals`); `tlbench run` runs the trials first, then the finals, and a resumed
suite redoes neither a recorded trial nor a recorded final.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..hashing import canonical_json
from ..results.records import headline_spec, is_done, task_of
from .grids import configurations, space_json, value_text

if TYPE_CHECKING:  # pragma: no cover
    from .compatibility import Plan
    from .matrix import RunSpec
    from .suite import Suite


def cell_key(spec: "RunSpec") -> str:
    """What one search selects for: the (source, targets, entry) cell, with a baseline's
    source being its network (baselines are shared between sources of one network)."""
    from .matrix import network_key

    source = network_key(spec.source, spec.architecture, spec.network) if spec.baseline else spec.source.id
    return canonical_json([source, spec.target_label(), spec.scored, spec.trial_of or spec.recipe.id, spec.baseline])


def split_searched(specs: list["RunSpec"], suite: "Suite") -> tuple[list["RunSpec"], list["RunSpec"]]:
    """(the specs to run now: those not searched, then the trials of those searched; the
    finals of those searched, their configuration not chosen yet)."""
    ready, trials, finals = [], {}, []
    protocol = {"refit": suite.refit, "seeds": list(suite.search_seeds)}
    refit_all = suite.searched and suite.refit == "train+val"
    for spec in specs:
        if spec.kind != "run" or not spec.recipe.search:
            # in a suite refitting on train+val every run does, so that all train on the same data
            ready.append(replace(spec, search={"space": {}, **protocol})
                         if refit_all and spec.kind in ("run", "multitask") else spec)
            continue
        for config in configurations(spec.recipe.search):
            label = f"{spec.recipe.id}[{','.join(f'{k}={value_text(v)}' for k, v in config.items())}]"
            recipe = replace(spec.recipe, id=label, params={**spec.recipe.params, **config}, search=())
            for seed in suite.search_seeds:
                trial = replace(spec, kind="trial", seed=seed, recipe=recipe, trial_of=spec.recipe.id)
                trials.setdefault(canonical_json([cell_key(spec), recipe.params, seed]), trial)
        finals.append(replace(spec, recipe=replace(spec.recipe, search=()),
                              search={"space": space_json(spec.recipe.search), **protocol}))
    return [*ready, *trials.values()], finals


@dataclass(frozen=True)
class Choice:
    """What a searched cell's trials chose, or why nothing could be chosen."""

    params: dict[str, Any] | None
    tuned: dict
    """The record's account: metric, chosen configuration, every trial's score."""
    problem: str | None = None


def _cost(record: dict) -> float:
    metrics = record.get("metrics") or {}
    training = ((record.get("details") or {}).get("strategy") or {}).get("training")
    steps = training.get("steps") if isinstance(training, dict) else None
    trainable = metrics.get("trainable_params") or 0
    return float(trainable) * float(steps if isinstance(steps, (int, float)) else 1)


def choose(final: "RunSpec", trials: list["RunSpec"], records: dict[str, dict]) -> Choice:
    """The configuration a cell's `trials` (every configuration × search seed) choose."""
    keys = list(final.search["space"])
    headline = headline_spec(final.task or task_of({}))
    higher, metric = headline["higher_is_better"], f"val_{headline['name']}"
    by_config: dict[str, dict] = {}
    for order, trial in enumerate(trials):
        config = {key: trial.recipe.params[key] for key in keys}
        entry = by_config.setdefault(canonical_json(config), {"params": config, "order": order, "trials": []})
        record = records.get(trial.run_id)
        score = (record.get("metrics") or {}).get(metric) if is_done(record) else None
        entry["trials"].append({"run_id": trial.run_id, "seed": trial.seed,
                                "status": record.get("status") if record else "missing", metric: score,
                                "cost": _cost(record) if is_done(record) else None})
    eligible = []
    for entry in by_config.values():
        scores = [t[metric] for t in entry["trials"]]
        entry["score"] = sum(scores) / len(scores) if all(isinstance(v, (int, float)) for v in scores) else None
        if entry["score"] is not None:
            cost = sum(t["cost"] for t in entry["trials"])
            eligible.append(((-entry["score"] if higher else entry["score"]), cost, entry["order"], entry))
    tuned = {"metric": metric, "higher_is_better": higher, "n_trials": len(trials),
             "configurations": [{"params": e["params"], "score": e["score"], "trials": e["trials"]}
                                for e in by_config.values()]}
    if not eligible:
        return Choice(None, tuned, f"no configuration of its search has a validation score ({metric}) from "
                                   f"every search seed: its finals are not run")
    best = min(eligible, key=lambda item: item[:3])[3]
    tuned["chosen"] = best["params"]
    tuned["score"] = best["score"]
    return Choice(best["params"], tuned)


def trials_of(planned: "Plan") -> dict[str, list["RunSpec"]]:
    """Each searched cell's trials (cell key → trials in configuration order)."""
    cells: dict[str, list] = {}
    for spec in planned.specs:
        if spec.kind == "trial":
            cells.setdefault(cell_key(spec), []).append(spec)
    return cells


def choose_finals(planned: "Plan", records: dict[str, dict]) -> tuple[list["RunSpec"], list[str]]:
    """The finals of every searched cell whose trials are recorded, with the chosen
    configuration, and the runs that waited for a searched baseline, all paired; and a
    line per cell where nothing could be chosen. `planned` keeps nothing waiting."""
    from .matrix import pair_runs, unique

    cells = trials_of(planned)
    finals, problems = [], []
    for final in planned.finals:
        choice = choose(final, cells.get(cell_key(final), []), records)
        if choice.params is None:
            problems.append(f"{final.label()}: {choice.problem}")
            continue
        recipe = replace(final.recipe, params={**final.recipe.params, **choice.params})
        finals.append(replace(final, recipe=recipe, tuned=choice.tuned))
    baselines = [spec for spec in finals if spec.baseline]
    runs = [spec for spec in finals if not spec.baseline] + planned.deferred
    ready = unique([*baselines, *pair_runs(runs, [*planned.specs, *baselines])])
    planned.finals, planned.deferred = [], []
    return ready, list(dict.fromkeys(problems))
