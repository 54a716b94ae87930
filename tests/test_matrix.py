"""Run matrix expansion and run identity."""

from __future__ import annotations

from dataclasses import replace

from tlbench.plan.matrix import expand, with_identity
from tlbench.plan.suite import load_suite

SUITE = """
[suite]
name = "m"
seeds = [0, 1, 2]

[[sources]]
id = "a"
plugin = "timm"
model = "test_resnet"
pretrained = false

[[sources]]
id = "b"
plugin = "timm"
model = "test_resnet"
pretrained = false
input_size = 32

[[sources]]
id = "c"
plugin = "timm"
model = "test_vit"
pretrained = false

[[targets]]
id = "t1"
plugin = "digits"
classes = [0, 1]

[[targets]]
id = "t2"
plugin = "digits"
classes = [2, 3]

[[strategies]]
id = "lp"
plugin = "linear-probe"

[[strategies]]
id = "ft"
plugin = "full-finetune"
"""


def _plan(path, registry):
    suite = load_suite(path, registry)
    specs = expand(suite, registry).specs
    hashes = {(t.id, s): f"hash-{t.id}-{s}" for t in suite.targets for s in suite.seeds}
    return suite, with_identity(specs, hashes, {})


def test_matrix_size_and_baselines(write_suite, registry):
    suite, specs = _plan(write_suite(SUITE), registry)
    runs = [s for s in specs if not s.baseline]
    baselines = [s for s in specs if s.baseline]
    assert len(runs) == 3 * 2 * 2 * 3
    # one baseline per architecture (a and b differ in input size, c is another model), target and seed
    assert len(baselines) == 3 * 2 * 3
    assert specs[:len(baselines)] == baselines  # baselines run first
    assert all(b.init == "random" and b.recipe.plugin == "full-finetune" for b in baselines)
    # every transfer run is paired with the baseline of its own architecture, target and seed
    by_id = {b.run_id: b for b in baselines}
    for run in runs:
        baseline = by_id[run.baseline_run_id]
        assert (baseline.target.id, baseline.seed) == (run.target.id, run.seed)
        assert baseline.architecture == run.architecture
    assert len({s.run_id for s in specs}) == len(specs)


def test_identity_ignores_labels_and_tracks_what_matters(write_suite, registry):
    _, specs = _plan(write_suite(SUITE), registry)
    spec = next(s for s in specs if not s.baseline)
    renamed = replace(spec, source=replace(spec.source, id="other-label"))
    assert renamed.run_id == spec.run_id
    changes = [
        replace(spec, seed=spec.seed + 10),
        replace(spec, content_hashes=("different",)),
        replace(spec, recipe=replace(spec.recipe, version=spec.recipe.version + ".1")),
        replace(spec, source=replace(spec.source, version=spec.source.version + ".1")),
        replace(spec, targets=(("target", replace(spec.target, params={**spec.target.params, "shots": 99})),)),
        replace(spec, source_fingerprint="sha256:abc"),
    ]
    assert len({c.run_id for c in changes} | {spec.run_id}) == len(changes) + 1


def test_baseline_disabled(write_suite, registry):
    path = write_suite(SUITE + "\n[baseline]\nenabled = false\n")
    _, specs = _plan(path, registry)
    assert not any(s.baseline for s in specs)
    assert all(s.baseline_run_id is None for s in specs)


def test_spec_json_round_trip(write_suite, registry):
    from tlbench.plan.matrix import RunSpec

    _, specs = _plan(write_suite(SUITE), registry)
    for spec in specs[:5]:
        again = RunSpec.from_json(spec.to_json())
        assert again == spec and again.run_id == spec.run_id


def test_execution_knobs_are_not_identity(write_suite, registry):
    _, specs = _plan(write_suite(SUITE), registry)
    spec = next(s for s in specs if not s.baseline and s.recipe.id == "ft")
    assert "num_workers" in spec.recipe.settings
    more_workers = replace(spec, recipe=replace(spec.recipe, params={**spec.recipe.params, "num_workers": 4}))
    assert more_workers.run_id == spec.run_id
    more_epochs = replace(spec, recipe=replace(spec.recipe, params={**spec.recipe.params, "epochs": 99}))
    assert more_epochs.run_id != spec.run_id
