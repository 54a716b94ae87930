"""Which rows of a data set a target keeps, and under which class: two benchmark
protocols that a data set's own splits and labels do not give.

- ``split_by``: splits by a column instead of the data set's own splits, as ESC-50 is
  split by its ``fold`` column (``{ column = "fold", test = [5], val = [4] }``: rows of
  fold 5 are the test split, of fold 4 the validation split, the others the training
  pool). A sweep over it runs every fold of a cross-validation as its own target.
- ``class_map``: classes renamed, merged or dropped, as SUPERB's keyword spotting keeps
  ten words of Speech Commands, merges the other words into ``_unknown_`` and keeps
  ``_silence_`` (``{ yes = "yes", ..., _silence_ = "_silence_", "*" = "_unknown_" }``).
  A class the map neither names nor covers with ``"*"`` is dropped with its rows. Our
  classes are numbered in the order their names first appear in the map.

Both select rows with `datasets.Dataset.select`, which keeps an index mapping and
copies nothing.
"""

from __future__ import annotations

from tlbench.errors import ParamError

OTHERS = "*"
"""The `class_map` key that maps every class the map does not name."""


def check_split_by(value) -> None:
    """`split_by` is { column = "<name>", test = [values...], val = [values...] (optional) }."""
    if value is None:
        return
    if not isinstance(value.get("column"), str):
        raise ParamError('split_by.column: expected the name of a column, e.g. split_by = { column = "fold", '
                         'test = [5] }')
    unknown = sorted(set(value) - {"column", "test", "val"})
    if unknown:
        raise ParamError(f"split_by.{unknown[0]}: unknown key; expected column, test and val")
    if not isinstance(value.get("test"), list) or not value["test"]:
        raise ParamError("split_by.test: expected a non-empty list of the column's values that make the test split")
    val = value.get("val", [])
    if not isinstance(val, list):
        raise ParamError("split_by.val: expected a list of the column's values that make the validation split")
    shared = [v for v in val if v in value["test"]]
    if shared:
        raise ParamError(f"split_by: {shared[0]!r} is in both test and val")


def check_class_map(value) -> None:
    """`class_map` maps class names to class names (strings)."""
    if value is None:
        return
    if not value:
        raise ParamError("class_map: expected at least one class, e.g. class_map = { yes = \"yes\", \"*\" = \"other\" }")
    for key, name in value.items():
        if not isinstance(name, str) or not name:
            raise ParamError(f"class_map.{key}: expected our name for the class (a string), got {name!r}")


def split_by_column(datasets: dict, split_by: dict, where: str) -> dict:
    """Our splits from the rows of `datasets['train']` by the value of one column; the
    data set must not map val or test splits of its own as well."""
    import numpy as np

    others = sorted(set(datasets) - {"train"})
    if others:
        raise ParamError(f"split_by: the data set also gives a {others[0]!r} split ({where}); use splits = "
                         f"{{ train = \"...\" }} to take one split and split it by {split_by['column']!r}")
    train = datasets["train"]
    column = split_by["column"]
    if column not in train.column_names:
        raise ParamError(f"split_by.column: the data set has no column {column!r}; it has "
                         f"{', '.join(train.column_names)}")
    values = np.asarray(train.with_format("numpy", columns=[column])[column])
    out = {}
    test = np.isin(values, split_by["test"])
    val = np.isin(values, split_by.get("val", []))
    for name, rows in (("test", test), ("val", val)):
        if name == "val" and not split_by.get("val"):
            continue
        if not rows.any():
            raise ParamError(f"split_by.{name}: no row has {column} in {split_by[name]}; its values are "
                             f"{', '.join(map(str, sorted(set(values.tolist()))[:10]))}")
        out[name] = train.select(np.flatnonzero(rows))
    out["train"] = train.select(np.flatnonzero(~(test | val)))
    return out


def remap_classes(class_names: list[str], labels: dict, class_map: dict) -> tuple[list[str], dict, dict]:
    """(our class names, our labels per split, the kept row indices per split) under
    `class_map` (see the module docstring)."""
    import numpy as np

    unknown = [key for key in class_map if key != OTHERS and key not in class_names]
    if unknown:
        raise ParamError(f"class_map.{unknown[0]}: the data set has no class {unknown[0]!r}; its classes are "
                         f"{', '.join(class_names[:20])}{', ...' if len(class_names) > 20 else ''}")
    ours = list(dict.fromkeys(class_map.values()))
    target = np.full(len(class_names), -1, dtype=np.int64)
    for i, name in enumerate(class_names):
        mapped = class_map.get(name, class_map.get(OTHERS))
        if mapped is not None:
            target[i] = ours.index(mapped)
    if len(set(target[target >= 0].tolist())) < 2:
        raise ParamError("class_map: keeps fewer than two classes")
    kept, remapped = {}, {}
    for split, ids in labels.items():
        new = target[ids]
        kept[split] = np.flatnonzero(new >= 0)
        remapped[split] = new[kept[split]]
    return ours, remapped, kept
