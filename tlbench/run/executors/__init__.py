"""Executors: where runs execute. All share the same contract and semantics:

``executor.run(specs, on_record, on_event, sources, on_preparation)`` prepares the
`sources` that runs need (pretraining, downloads), calling ``on_preparation(source,
None)`` as each starts and ``on_preparation(source, seconds)`` as it ends, and raising
`PreparationFailed` at the first that fails; it executes every spec once, passes what a
run reports on its way (``on_event(spec, kind, payload)``: evaluations) and calls
``on_record(spec, record)`` as each finishes, in the driver process, which alone writes
to the store; ``executor.close()`` releases the workers. Executors start nothing before
`run`. Ctrl-C and SIGTERM (`stopped.Terminated`) reach `run` as `KeyboardInterrupt`:
the runs in progress are recorded as interrupted, then it is raised again. A run starts only after its source is
prepared and its from-scratch baseline has finished, so its negative-transfer score
can be recorded with it. A failed, killed or crashed run still gets a record.
"""

from dataclasses import dataclass

from .schedule import Schedule


@dataclass
class PrepareFailure:
    """A source whose preparation failed (``source`` is its suite entry as JSON)."""

    source: dict
    error_type: str
    message: str
    user_error: bool = False


class PreparationFailed(Exception):
    """A source could not be prepared: the suite cannot run as written."""

    def __init__(self, failure: PrepareFailure):
        super().__init__(failure.message)
        self.failure = failure


__all__ = ["PrepareFailure", "PreparationFailed", "Schedule"]
