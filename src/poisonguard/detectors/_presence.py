"""Per-class presence tests shared by the backdoor detectors.

A backdoor detector first decides, per labelled class, whether a poisoned
subpopulation exists at all, and only then scores rows. Both the decision and the
statistic behind it are reported, so a person can check the claim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

__all__ = ["ClassPresence", "Candidate", "summarize_presence"]


@dataclass(frozen=True)
class ClassPresence:
    """Result of a per-class presence test.

    Attributes
    ----------
    label : int
        Class code (``{label:K}`` in reasons).
    n_rows : int
        Rows labelled with the class.
    statistic : float
        The test statistic (detector-specific; see ``statistic_name``).
    statistic_name : str
        What ``statistic`` measures.
    p_value : float
        One-sided p-value of the statistic under the clean null.
    threshold : float
        The p-value below which the class is judged poisoned (Bonferroni-corrected).
    poisoned : bool
        The decision: ``p_value < threshold`` (and the detector's minimum evidence).
    n_suspects : int
        Rows of the class that carry the evidence.
    detail : str
        One human sentence.
    """

    label: int
    n_rows: int
    statistic: float
    statistic_name: str
    p_value: float
    threshold: float
    poisoned: bool
    n_suspects: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Candidate(Protocol):
    """What a detector's candidate (a suspected trigger or cluster) must expose."""

    label: int
    present: bool
    p_value: float


C = TypeVar("C", bound=Candidate)


def summarize_presence(
    candidates: Sequence[C],
    counts: np.ndarray,
    *,
    statistic_name: str,
    level: float,
    empty_detail: str,
    best: Callable[[C], Any],
    describe: Callable[[C, list[C]], tuple[float, int, str]],
) -> tuple[np.ndarray, list[ClassPresence]]:
    """One :class:`ClassPresence` per class from a detector's candidates.

    Parameters
    ----------
    candidates : sequence
        Tested candidates, each with ``label``, ``present`` and ``p_value``.
    counts : ndarray
        Rows per class code.
    best : callable
        Sort key choosing the class's reported candidate (smallest first).
    describe : callable
        ``describe(best, all_of_class) -> (statistic, n_suspects, detail)``.

    Returns
    -------
    present : ndarray of bool
        Per class: is any candidate present.
    presence : list of ClassPresence
    """
    present = np.zeros(len(counts), dtype=bool)
    out: list[ClassPresence] = []
    for c in range(len(counts)):
        mine = [x for x in candidates if x.label == c]
        if not mine:
            out.append(ClassPresence(c, int(counts[c]), 0.0, statistic_name, 1.0, level, False, 0, empty_detail))
            continue
        top = min(mine, key=best)
        present[c] = any(x.present for x in mine)
        statistic, n_suspects, detail = describe(top, mine)
        out.append(ClassPresence(c, int(counts[c]), float(statistic), statistic_name, float(top.p_value), level,
                                 bool(present[c]), int(n_suspects), detail))
    return present, out
