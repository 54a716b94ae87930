"""The inline executor: runs in the calling process, one after the other.

No isolation and only the engine's own budget checks: for debugging a plugin, for
profiling, and for measuring tlbench's overhead against a plain training loop.
"""

from __future__ import annotations

import time
from typing import Callable

from ...errors import UserError
from ..execute import RunSettings, Worker
from ...plan.matrix import RunSpec
from . import PreparationFailed, PrepareFailure
from .schedule import Schedule


class InlineExecutor:
    name = "inline"

    def __init__(self, settings: RunSettings, registry=None):
        self.worker = Worker(settings, registry)

    def prepare(self, sources: list[dict],
                on_preparation: Callable[[dict, float | None], None] = lambda source, seconds: None) -> None:
        """Prepare `sources` one after the other, saying when each starts and ends."""
        for source in sources:
            on_preparation(source, None)
            started = time.monotonic()
            try:
                self.worker.prepare(source)
            except Exception as exc:
                raise PreparationFailed(PrepareFailure(source, type(exc).__name__, str(exc).strip(),
                                                       isinstance(exc, UserError))) from None
            on_preparation(source, time.monotonic() - started)

    def run(self, specs: list[RunSpec], on_record: Callable[[RunSpec, dict], None],
            on_event: Callable[[RunSpec, str, dict], None] = lambda spec, kind, payload: None,
            sources: list[dict] = (),
            on_preparation: Callable[[dict, float | None], None] = lambda source, seconds: None) -> None:
        self.prepare(list(sources), on_preparation)
        schedule = Schedule(specs)
        while (spec := schedule.next_ready()) is not None:
            record = self.worker.run(spec, lambda kind, payload, spec=spec: on_event(spec, kind, payload))
            schedule.finished(spec)
            on_record(spec, record)

    def close(self) -> None:
        pass
