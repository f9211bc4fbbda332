"""The version graph of a dataset: parents, transforms and scans."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import NotFoundError
from ..store import Store
from ._api import ScanInfo, VersionInfo, list_scans, list_versions

__all__ = ["Lineage", "lineage"]


@dataclass(frozen=True)
class Lineage:
    """Versions related to a dataset name, with their parent edges and scans.

    ``versions`` holds every version of the name, plus their ancestors and descendants
    under any name, in ledger order. ``children[v]`` lists the versions derived from ``v``.
    """

    name: str
    versions: list[VersionInfo]
    children: dict[str, list[str]]
    scans: dict[str, list[ScanInfo]] = field(default_factory=dict)

    @property
    def roots(self) -> list[VersionInfo]:
        ids = {v.version_id for v in self.versions}
        return [v for v in self.versions if v.parent is None or v.parent not in ids]

    def get(self, version_id: str) -> VersionInfo:
        return next(v for v in self.versions if v.version_id == version_id)


def lineage(store: Store, name: str) -> Lineage:
    """Build the lineage of dataset ``name`` (``NAME@N`` is accepted and means its name)."""
    base = name.split("@", 1)[0]
    allv = list_versions(store)
    by_id = {v.version_id: v for v in allv}
    mine = [v for v in allv if v.name == base]
    if not mine:
        names = sorted({v.name for v in allv})
        raise NotFoundError(f"unknown dataset {base!r}; recorded datasets: {', '.join(names) or '(none)'}")
    keep = {v.version_id for v in mine}
    # ancestors
    for v in mine:
        p = v.parent
        while p and p in by_id and p not in keep:
            keep.add(p)
            p = by_id[p].parent
    # descendants
    changed = True
    while changed:
        changed = False
        for v in allv:
            if v.parent in keep and v.version_id not in keep:
                keep.add(v.version_id)
                changed = True
    versions = [v for v in allv if v.version_id in keep]
    children: dict[str, list[str]] = {v.version_id: [] for v in versions}
    for v in versions:
        if v.parent in children:
            children[v.parent].append(v.version_id)
    scans: dict[str, list[ScanInfo]] = {v.version_id: [] for v in versions}
    for sc in list_scans(store):
        if sc.version_id in scans:
            scans[sc.version_id].append(sc)
    return Lineage(name=base, versions=versions, children=children, scans=scans)
