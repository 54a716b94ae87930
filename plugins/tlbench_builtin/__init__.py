"""tlbench's built-in plugins: the timm, transformers (`hf`) and trained-on-the-spot
sources; the digits, `hf-dataset` and `imagefolder` targets; the transfer strategies;
and the transferability estimators.

Each module is registered through the ``tlbench`` entry-point group in tlbench's own
``pyproject.toml``, exactly as a third-party plugin package registers its modules.
"""
