"""Order of execution: specs in suite order, each after the baseline it is paired with."""

from __future__ import annotations

from ..matrix import RunSpec


class Schedule:
    def __init__(self, specs: list[RunSpec]):
        self.pending = list(specs)
        self.unfinished = {spec.run_id for spec in specs}

    def __bool__(self) -> bool:
        return bool(self.unfinished)

    def next_ready(self) -> RunSpec | None:
        """The first pending spec whose baseline is not still to run, or None."""
        for i, spec in enumerate(self.pending):
            if spec.baseline_run_id is None or spec.baseline_run_id not in self.unfinished:
                return self.pending.pop(i)
        return None

    def finished(self, spec: RunSpec) -> None:
        self.unfinished.discard(spec.run_id)

    def cancel_pending(self) -> list[RunSpec]:
        cancelled, self.pending = self.pending, []
        for spec in cancelled:
            self.unfinished.discard(spec.run_id)
        return cancelled
