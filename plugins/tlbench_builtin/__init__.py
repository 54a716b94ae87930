"""tlbench's built-in plugins: timm and trained-on-the-spot sources, the digits target,
and the transfer strategies.

Each module is registered through the ``tlbench`` entry-point group in tlbench's own
``pyproject.toml``, exactly as a third-party plugin package registers its modules.
"""
