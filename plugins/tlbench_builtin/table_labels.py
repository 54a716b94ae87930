"""Multilabel and regression labels read from the columns of a table.

Why one module: `hf-dataset` (a data set's columns) and `imagefolder` (a labels file
beside the images) hold the labels of these tasks in the same few ways, and a label
must mean the same whichever target read it. The ways, per task:

- **multilabel, one column with a list of classes per example**: a data set's
  ``Sequence(ClassLabel)`` (class ids; the class names are the feature's), a list of
  plain values, or, in a labels file, ``;``-separated class names (the classes are then
  the sorted distinct values over every split used). An empty list is an example with
  none of the classes.
- **multilabel, several 0/1 columns, one per class**: the class names are the column names.
- **regression, one or more numeric columns**, one predicted value each, named after its
  column: a float64 array of shape (n,) for one column, (n, k) for several.

Multilabel labels come out as an (n, K) int64 array of 0/1. A missing cell (None or
NaN) is an error naming the parameter, the split and how many: tlbench never guesses a
label, because a score against invented labels is a wrong number that raises nothing.

The `task` parameter of the targets that read tables lives here too (`TASK_PARAM`),
with `check_label_columns`, the cheap check of a `label_columns` list.

numpy and pandas are imported inside the functions: the targets import this module when
they register, and `tlbench list` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tlbench.errors import ParamError
from tlbench.params import Param

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

TASKS = ("classification", "multilabel", "regression")

TASK_PARAM = Param(str, "classification", "task type of the labels: 'classification' (one class per example), "
                                          "'multilabel' (a set of classes per example) or 'regression' (real "
                                          "values per example)", choices=TASKS, omit_default=True)
"""The `task` parameter; at its default it stays out of run identities, so the
classification runs recorded before it existed keep their ids."""


@dataclass
class LabelTable:
    """The label columns of each of a data set's own splits, and how messages name them."""

    frames: dict[str, "pd.DataFrame"]
    """Our split ('train', and optionally 'val' and 'test') -> its rows, in example order."""
    param: str
    """The parameter that named the columns (or the file holding them), which messages name."""
    places: dict[str, str]
    """Our split -> how a message names its rows: "split 'validation'", "'labels.csv'"."""


@dataclass
class TaskLabels:
    """Labels of every split, and the name of each class (or predicted value)."""

    class_names: list[str]
    by_split: dict[str, "np.ndarray"]
    """Our split -> one label row per example (see the module docstring for the forms)."""


def check_label_columns(columns: list[str], task: str, reserved: tuple[str, ...] = ()) -> None:
    """A `label_columns` list that cannot work, refused before any data is read."""
    if not columns:
        raise ParamError("label_columns: expected at least one column name, got an empty list")
    doubled = sorted({c for c in columns if columns.count(c) > 1})
    if doubled:
        raise ParamError(f"label_columns: {doubled[0]!r} is listed twice")
    taken = [c for c in columns if c in reserved]
    if taken:
        raise ParamError(f"label_columns: {taken[0]!r} is not a label column")
    if task == "multilabel" and len(columns) < 2:
        raise ParamError(f"label_columns: a multilabel target needs at least 2 columns (one 0/1 column per "
                         f"class), got {columns!r}")


def check_complete(table: LabelTable, columns: list[str]) -> None:
    """Refuse missing labels (None or NaN), naming the split and how many."""
    for split, frame in table.frames.items():
        count = int(frame[columns].isna().any(axis=1).sum())
        if count:
            where = ", ".join(repr(c) for c in columns)
            raise ParamError(f"{table.param}: {table.places[split]} has {count} example(s) with a missing label "
                             f"(None or NaN) in {where}; every example needs one")


def multi_hot_lists(table: LabelTable, column: str, names: list[str] | None = None) -> TaskLabels:
    """Multilabel rows from one column with a list of classes per example: class ids into
    `names` when given, else values whose sorted distinct set are the classes."""
    import numpy as np

    check_complete(table, [column])
    cells = {split: [_list_cell(cell, table, split, column) for cell in frame[column]]
             for split, frame in table.frames.items()}
    if names is None:
        values = sorted({v for rows in cells.values() for row in rows for v in row}, key=lambda v: (str(type(v)), v))
        index = {value: i for i, value in enumerate(values)}
        names = [str(value) for value in values]
    else:
        index = {i: i for i in range(len(names))}
    _need_two_classes(table, names, repr(column))
    by_split = {}
    for split, rows in cells.items():
        hot = np.zeros((len(rows), len(names)), dtype=np.int64)
        for row, values in zip(hot, rows):
            unknown = [v for v in values if v not in index]
            if unknown:
                raise ParamError(f"{table.param}: {table.places[split]} has the class id {unknown[0]!r} in "
                                 f"{column!r}, outside 0..{len(names) - 1}")
            row[[index[v] for v in values]] = 1
        by_split[split] = hot
    return TaskLabels(class_names=list(names), by_split=by_split)


def multi_hot_columns(table: LabelTable, columns: list[str]) -> TaskLabels:
    """Multilabel rows from 0/1 columns, one per class (the class names are the column names)."""
    import numpy as np

    check_complete(table, columns)
    _need_two_classes(table, columns, "the label columns")
    for split, frame in table.frames.items():
        for column in columns:
            values = frame[column]
            if values.dtype.kind not in "biuf":
                raise ParamError(f"{table.param}: column {column!r} holds {values.dtype} values in "
                                 f"{table.places[split]}; multilabel columns hold 0 or 1")
            bad = values[(values != 0) & (values != 1)]
            if len(bad):
                raise ParamError(f"{table.param}: column {column!r} has the value {_plain(bad.iloc[0])!r} in "
                                 f"{table.places[split]}; multilabel columns hold 0 or 1")
    return TaskLabels(class_names=list(columns),
                      by_split={split: frame[columns].to_numpy(dtype=np.float64).astype(np.int64)
                                for split, frame in table.frames.items()})


def value_columns(table: LabelTable, columns: list[str]) -> TaskLabels:
    """Regression values from numeric columns: (n,) float64 for one column, (n, k) for several."""
    import numpy as np

    check_complete(table, columns)
    by_split = {}
    for split, frame in table.frames.items():
        for column in columns:
            if frame[column].dtype.kind not in "iuf":
                raise ParamError(f"{table.param}: column {column!r} holds {frame[column].dtype} values in "
                                 f"{table.places[split]}; the regression task needs numbers")
        values = frame[columns].to_numpy(dtype=np.float64)
        count = int((~np.isfinite(values)).any(axis=1).sum())
        if count:
            raise ParamError(f"{table.param}: {table.places[split]} has {count} example(s) with an infinite "
                             f"value in {', '.join(repr(c) for c in columns)}")
        by_split[split] = values[:, 0] if len(columns) == 1 else values
    return TaskLabels(class_names=list(columns), by_split=by_split)


def _list_cell(cell: Any, table: LabelTable, split: str, column: str) -> list:
    """One cell of a list column as a list of plain Python values."""
    if isinstance(cell, (str, bytes)) or not hasattr(cell, "__iter__"):
        raise ParamError(f"{table.param}: column {column!r} holds one value per example ({cell!r} in "
                         f"{table.places[split]}); the multilabel task needs a list of classes per example, "
                         f"or one 0/1 column per class (label_columns)")
    values = [_plain(value) for value in cell]
    if any(value is None or value != value for value in values):
        raise ParamError(f"{table.param}: {table.places[split]} has a missing class (None or NaN) inside a "
                         f"list in {column!r}")
    return values


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for sets of classes and for messages)."""
    return value.item() if hasattr(value, "item") else value


def _need_two_classes(table: LabelTable, names: list[str], what: str) -> None:
    if len(names) < 2:  # with one class every example would be scored alike
        raise ParamError(f"{table.param}: {len(names)} class(es) in {what}; a multilabel target needs at least 2")
