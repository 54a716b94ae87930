"""tlbench-yolo: ultralytics YOLO as a tlbench source for the `detection` task.

Licensed AGPL-3.0-or-later, as ultralytics is; kept out of tlbench's own dependencies.
The entry point is `tlbench_yolo.source` (registration only; torch and ultralytics are
imported when a model is checked or built); `tlbench_yolo.model` holds the network
pieces: the backbone up to YOLO's Detect head, and the head with its loss and decoding.
"""

__version__ = "0.1.0"
