"""Budgets: the one rule for "may this job be sent without passing the limit?".

A budget counts money in three places: what completed jobs cost (``spent``), the estimates of
jobs in flight (``in_flight``), and the estimates of jobs that ended without a known cost but
that Fal may still bill — a job cancelled after it had started, or one whose submit may have
reached Fal (``held``). A job is admitted only if spent + in flight + held + its own estimate
stays within the limit, and its estimate is reserved at once, so two jobs starting together
cannot both slip under it. The service has one (the spend cap of the MCP server and the web
service); a batch has its own on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from falkit.errors import BudgetExceededError, ValidationError

EPSILON = 1e-9


@dataclass
class Budget:
    """Money allowed, spent and committed, in USD; ``limit`` None means no limit."""

    limit: float | None = None
    name: str = "spend cap"
    hint: str = "raise the limit"
    spent: float = 0.0
    held: float = 0.0
    _reserved: dict[str, float] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        check_limit(self.limit, self.name)

    @property
    def in_flight(self) -> float:
        return round(sum(self._reserved.values()), 9)

    @property
    def committed(self) -> float:
        """Spent, plus what jobs in flight and held jobs may still cost."""
        return round(self.spent + self.held + self.in_flight, 9)

    @property
    def remaining(self) -> float | None:
        return None if self.limit is None else max(0.0, self.limit - self.committed)

    def holds(self, job_id: str) -> bool:
        return job_id in self._reserved

    def fits(self, estimate: float | None) -> bool:
        """Whether a job of this estimate may start now (unknown costs never fit a limit)."""
        if self.limit is None:
            return True
        if estimate is None:
            return False
        return self.committed + estimate <= self.limit + EPSILON

    def check(self, estimate: float | None, what: str) -> None:
        """BudgetExceededError saying why a job of this estimate may not start."""
        if self.fits(estimate):
            return
        assert self.limit is not None
        if estimate is None:
            raise BudgetExceededError(
                f"refused: the cost of {what} is unknown, and the {self.name} is "
                f"${self.limit:g}; use a catalog model (see `falkit models`)"
            )
        raise BudgetExceededError(
            f"refused before submitting: {what} is estimated at ${estimate:.4f}, and "
            f"${self.committed:.4f} of the ${self.limit:g} {self.name} is already spent or "
            f"committed; {self.hint}"
        )

    def reserve(
        self, job_id: str, estimate: float | None, what: str = "this job", *, force: bool = False
    ) -> None:
        """Hold a job's estimate, or raise BudgetExceededError (nothing is held then).

        ``force`` holds it without the check: a job already at Fal is counted whatever it costs.
        """
        if job_id in self._reserved:
            return
        if not force:
            self.check(estimate, what)
        self._reserved[job_id] = estimate or 0.0

    def revise(self, job_id: str, billed: float) -> None:
        """Fal answered with what the job is billed: until it settles, that counts, not the
        estimate (so jobs still downloading cannot hide an overrun from the next admission)."""
        if job_id in self._reserved:
            self._reserved[job_id] = billed

    def settle(self, job_id: str, cost: float | None) -> None:
        """The job completed: its recorded cost (or, unknown, its estimate) counts as spent."""
        estimate = self._reserved.pop(job_id, 0.0)
        self.spent = round(self.spent + (estimate if cost is None else cost), 9)

    def release(self, job_id: str) -> None:
        """The job will certainly not be billed (failed, or cancelled before it ran)."""
        self._reserved.pop(job_id, None)

    def hold(self, job_id: str) -> None:
        """The job ended, but Fal may still bill it: keep its estimate counted."""
        estimate = self._reserved.pop(job_id, 0.0)
        self.held = round(self.held + estimate, 9)

    def to_json(self) -> dict[str, float | None]:
        return {
            "limit_usd": self.limit,
            "spent_usd": round(self.spent, 6),
            "in_flight_usd": round(self.in_flight, 6),
            "held_usd": round(self.held, 6),
            "committed_usd": round(self.committed, 6),
        }


def check_limit(limit: float | None, field: str = "budget") -> None:
    """A limit is a positive, finite number of USD (or None)."""
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise ValidationError.field(field, f"{limit!r} is not an amount", "a positive USD amount")
    if math.isnan(limit) or math.isinf(limit) or limit <= 0:
        raise ValidationError.field(field, f"{limit} is not a limit", "a positive USD amount")
