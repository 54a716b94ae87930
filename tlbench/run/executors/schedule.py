"""Order of execution: source preparations first, then specs in suite order, each
after the runs it depends on (`RunSpec.depends_on`: its paired baseline, and whatever
edges a run kind adds) and after its source is prepared (for a seeded source, its
preparation for the run's seed: the entry then carries a ``seed``).

From-scratch baselines need no prepared source, so with several workers they run
while the sources are still being prepared (pretrained, downloaded).
"""

from __future__ import annotations

from ...plan.matrix import RunSpec


def preparation_key(source: dict) -> tuple[str, int | None]:
    """(source id, seed): the seed of a seeded source's preparation, else None."""
    return source["id"], source.get("seed")


class Schedule:
    def __init__(self, specs: list[RunSpec], sources: list[dict] = ()):
        self.pending = list(specs)
        self.unfinished = {spec.run_id for spec in specs}
        self.preparations = list(sources)
        """Source entries (as JSON) still to prepare."""
        self.unprepared = {preparation_key(source) for source in sources}

    def __bool__(self) -> bool:
        return bool(self.unfinished or self.unprepared)

    def has_pending(self) -> bool:
        return bool(self.pending or self.preparations)

    def next_preparation(self) -> dict | None:
        return self.preparations.pop(0) if self.preparations else None

    def next_ready(self) -> RunSpec | None:
        """The first pending spec none of whose dependencies is still to run and whose
        source is prepared (or not needed: random initialisation), or None."""
        for i, spec in enumerate(self.pending):
            if any(run_id in self.unfinished for run_id in spec.depends_on):
                continue
            if spec.init != "random" and ((spec.source.id, None) in self.unprepared
                                          or (spec.source.id, spec.seed) in self.unprepared):
                continue
            return self.pending.pop(i)
        return None

    def prepared(self, source: dict) -> None:
        self.unprepared.discard(preparation_key(source))

    def finished(self, spec: RunSpec) -> None:
        self.unfinished.discard(spec.run_id)
