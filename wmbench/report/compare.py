"""Two runs side by side: the same (method, attack, strength) settings, TPR in each.

Runs are matched on labels, not cell keys: a comparison is usually between runs
that differ on purpose (another LM, another seed, a new library version), so
their cells differ while the settings they share are what a reader compares. A
difference is flagged when the two 95 % intervals do not overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from wmbench.report.aggregate import Row, summarize
from wmbench.report.run import StoredRun
from wmbench.report.verdict import Verdict, build_verdict
from wmbench.stats import Rate


@dataclass(frozen=True)
class ComparedRow:
    modality: str
    method: str
    attack: str
    strength: Any
    this: Rate
    other: Rate

    @property
    def difference(self) -> float:
        return self.this.value - self.other.value

    @property
    def significant(self) -> bool:
        return self.this.low > self.other.high or self.other.low > self.this.high


@dataclass(frozen=True)
class Comparison:
    other_label: str
    rows: tuple[ComparedRow, ...]
    only_here: int  # settings measured in this run only
    only_there: int
    this_verdict: Verdict
    other_verdict: Verdict

    @property
    def significant(self) -> list[ComparedRow]:
        return [r for r in self.rows if r.significant]


def compare_runs(run: StoredRun, other: StoredRun, alpha: float, interval: str = "wilson") -> Comparison:
    def keyed(rows: Sequence[Row]) -> dict[tuple, Row]:
        return {(r.modality, r.method, r.attack, r.strength_index): r for r in rows}

    here, there = keyed(summarize(run.records, alpha, interval)), keyed(summarize(other.records, alpha, interval))
    both = [k for k in here if k in there]
    rows = tuple(ComparedRow(k[0], k[1], k[2], here[k].strength, here[k].tpr, there[k].tpr) for k in both
                 if here[k].tpr.n and there[k].tpr.n)
    return Comparison(other.label, rows, len(set(here) - set(there)), len(set(there) - set(here)),
                      build_verdict([run]), build_verdict([other]))


__all__ = ["ComparedRow", "Comparison", "compare_runs"]
