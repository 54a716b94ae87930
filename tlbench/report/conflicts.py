"""Records that claim the same target but saw different data, kept apart.

A target's content hash is the hash of the examples a run used for its seed, so two
records for the same target (same plugin, version and parameters) and the same seed must
carry the same hash. When they do not, the data behind the target differ between them (a
data set changed upstream, a file edited on one machine) and their numbers must never be
pooled into one cell.

Such a target is split into *data groups*. The records of each machine (host) form one
unit, since one machine normally sees one version of the data; a machine whose own
records disagree is split further by content hash. Units that agree on every seed they
share are then joined, so that machines with the same data still share a cell. Each data
group becomes a target of its own in every view of the report.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Conflict:
    target: str
    target_identity: str
    seed: int
    hashes: dict[str, list[str]]
    """content hash → hosts whose records carry it."""

    def __str__(self) -> str:
        seen = "; ".join(f"{h[:12]} from {', '.join(hosts)}" for h, hosts in sorted(self.hashes.items()))
        return (f"target {self.target!r} seed {self.seed}: records disagree on the data "
                f"(content hashes {seen}); kept apart as separate data groups, never pooled")


@dataclass
class _Unit:
    name: str
    rows: list[int]
    hashes: dict[int, str]  # seed → content hash

    def agrees(self, other: "_Unit") -> bool:
        return all(self.hashes[s] == other.hashes[s] for s in self.hashes.keys() & other.hashes.keys())


def find_conflicts(frame: pd.DataFrame) -> list[Conflict]:
    conflicts = []
    hashed = frame.dropna(subset=["content_hash"])
    per_seed = hashed.groupby(["target_identity", "seed"], sort=True)["content_hash"].nunique()
    for identity, seed in per_seed.index[per_seed.to_numpy() > 1]:  # one pass; the rare conflicts looked at
        group = frame[(frame["target_identity"] == identity) & (frame["seed"] == seed)]
        hashes = group.dropna(subset=["content_hash"]).groupby("content_hash")["host"]
        if hashes.ngroups > 1:
            conflicts.append(Conflict(
                target=", ".join(sorted(group["target"].unique())), target_identity=identity, seed=int(seed),
                hashes={h: sorted(hosts.fillna("?").unique()) for h, hosts in hashes}))
    return conflicts


def data_groups(frame: pd.DataFrame, conflicts: list[Conflict]) -> pd.Series:
    """A data-group label per row: '' for targets without conflicts."""
    labels = pd.Series("", index=frame.index, dtype=object)
    for identity in sorted({c.target_identity for c in conflicts}):
        rows = frame[frame["target_identity"] == identity]
        for unit in _join(_units(rows)):
            labels.loc[unit.rows] = unit.name
    return labels


def _units(rows: pd.DataFrame) -> list[_Unit]:
    units = []
    for host, by_host in rows.groupby(rows["host"].fillna("unknown host"), sort=True):
        per_seed = by_host.groupby("seed")["content_hash"].nunique()
        if (per_seed <= 1).all():
            hashes = by_host.dropna(subset=["content_hash"]).groupby("seed")["content_hash"].first()
            units.append(_Unit(str(host), list(by_host.index), {int(s): h for s, h in hashes.items()}))
            continue
        for content_hash, part in by_host.groupby(by_host["content_hash"].fillna("?"), sort=True):
            units.append(_Unit(f"{host} {content_hash[:8]}", list(part.index),
                               {int(s): content_hash for s in part["seed"].unique()}))
    return units


def _join(units: list[_Unit]) -> list[_Unit]:
    """Greedily join units that agree on all shared seeds (largest first, then by name)."""
    groups: list[_Unit] = []
    for unit in sorted(units, key=lambda u: (-len(u.rows), u.name)):
        for group in groups:
            if group.agrees(unit):
                group.name = f"{group.name}, {unit.name}"
                group.rows += unit.rows
                group.hashes |= unit.hashes
                break
        else:
            groups.append(_Unit(unit.name, list(unit.rows), dict(unit.hashes)))
    return groups
