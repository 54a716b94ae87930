"""An example third-party tlbench plugin package.

It adds one item of each kind, each in its own module registered through the
``tlbench`` entry-point group in this package's ``pyproject.toml``:

- source ``random-conv`` (`tlbench_example.random_conv`): an untrained convolutional
  network with fixed random weights, the random-features baseline;
- target ``stripes`` (`tlbench_example.stripes`): synthetic oriented gratings;
- strategy ``nearest-mean`` (`tlbench_example.nearest_mean`): nearest class mean on
  frozen features.

None of them downloads anything, and none imports torch until an item is used.
"""
