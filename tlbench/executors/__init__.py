"""Executors: where runs execute. All share the same contract and semantics:

``executor.run(specs, on_record)`` executes every spec once and calls
``on_record(spec, record)`` as each finishes, in the driver process, which alone
writes to the store. A run starts only after its from-scratch baseline has finished,
so its negative-transfer score can be recorded with it.
"""

from .schedule import Schedule

__all__ = ["Schedule"]
