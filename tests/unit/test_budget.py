"""The one budget rule (falkit.service.budget), table by table: what fits, what each ending
does to the money, the refusals' words, the limits allowed. (The off-by-one tests of issue 11
are in tests/hardening/test_gaps.py.)"""

from __future__ import annotations

import math

import pytest

from falkit.errors import BudgetExceededError, ValidationError
from falkit.service.budget import EPSILON, Budget, check_limit


def test_no_limit_admits_anything_even_an_unknown_cost() -> None:
    budget = Budget()
    assert budget.fits(None)
    assert budget.fits(1e9)
    budget.reserve("a", None)
    budget.reserve("b", 5.0)
    assert budget.holds("a")
    assert budget.in_flight == 5.0  # an unknown estimate holds nothing
    assert budget.remaining is None


def test_an_unknown_cost_never_fits_a_limit() -> None:
    budget = Budget(limit=100.0, name="spend cap")
    assert not budget.fits(None)
    with pytest.raises(BudgetExceededError) as caught:
        budget.reserve("a", None, "this custom model")
    assert str(caught.value) == (
        "refused: the cost of this custom model is unknown, and the spend cap is $100; "
        "use a catalog model (see `falkit models`)"
    )
    assert not budget.holds("a")


def test_a_refusal_names_the_estimate_the_commitments_and_the_fix() -> None:
    budget = Budget(limit=0.5, name="batch budget", hint="raise --budget")
    budget.reserve("a", 0.25)
    budget.settle("a", 0.3)
    with pytest.raises(BudgetExceededError) as caught:
        budget.check(0.25, "job #3")
    assert str(caught.value) == (
        "refused before submitting: job #3 is estimated at $0.2500, and $0.3000 of the $0.5 "
        "batch budget is already spent or committed; raise --budget"
    )
    budget.check(0.2, "job #4")  # fits: no exception


def test_reserving_twice_holds_once() -> None:
    budget = Budget(limit=1.0)
    budget.reserve("a", 0.6)
    budget.reserve("a", 0.6)  # the same job again (a resume): nothing more is held
    assert budget.in_flight == 0.6


def test_force_holds_a_job_already_at_fal_whatever_it_costs() -> None:
    budget = Budget(limit=1.0)
    budget.reserve("a", 0.9)
    budget.reserve("b", 0.9, force=True)
    assert budget.committed == 1.8
    assert budget.remaining == 0.0
    budget.reserve("c", None, force=True)
    assert budget.holds("c")
    assert budget.in_flight == 1.8


def test_each_ending_moves_the_money_where_it_belongs() -> None:
    budget = Budget(limit=10.0)
    for job, estimate in (("done", 1.0), ("unknown cost", 2.0), ("failed", 3.0), ("held", 0.5)):
        budget.reserve(job, estimate)
    budget.settle("done", 1.25)  # completed: its real cost counts
    budget.settle("unknown cost", None)  # completed, cost not recorded: the estimate counts
    budget.release("failed")  # certainly not billed
    budget.hold("held")  # ended, but Fal may bill it
    assert (budget.spent, budget.held, budget.in_flight) == (3.25, 0.5, 0.0)
    assert budget.committed == 3.75
    assert budget.remaining == 6.25
    assert not any(budget.holds(job) for job in ("done", "unknown cost", "failed", "held"))


def test_endings_of_jobs_never_reserved_change_nothing() -> None:
    budget = Budget(limit=1.0)
    budget.settle("ghost", None)
    budget.hold("ghost")
    budget.release("ghost")
    assert (budget.spent, budget.held, budget.in_flight) == (0.0, 0.0, 0.0)
    budget.settle("ghost", 0.2)  # a cost recorded for a job never reserved still counts
    assert budget.spent == 0.2


def test_sums_are_rounded_to_a_billionth() -> None:
    budget = Budget(limit=1.0)
    for n in range(3):
        budget.reserve(f"j{n}", 0.1)
    assert budget.in_flight == 0.3  # not 0.30000000000000004
    for n in range(3):
        budget.settle(f"j{n}", 0.1)
    assert budget.spent == 0.3
    budget.reserve("held", 4e-10)
    budget.hold("held")
    assert budget.held == 0.0  # what is held is kept to a billionth too
    budget.reserve("h", 0.1)
    budget.hold("h")
    budget.reserve("i", 0.2)
    budget.hold("i")
    assert budget.held == 0.3
    assert budget.committed == 0.6


def test_remaining_never_goes_below_zero() -> None:
    budget = Budget(limit=1.0)
    budget.reserve("a", 3.0, force=True)
    assert budget.remaining == 0.0


def test_the_tolerance_is_a_billionth() -> None:
    assert EPSILON == 1e-9
    budget = Budget(limit=1.0)
    assert budget.fits(1.0 + 1e-10)
    assert not budget.fits(1.0 + 1e-8)


def test_to_json() -> None:
    budget = Budget(limit=2.0)
    budget.reserve("a", 0.1234567)
    budget.reserve("b", 0.5)
    budget.settle("b", 0.25)
    budget.reserve("c", 0.3)
    budget.hold("c")
    assert budget.to_json() == {
        "limit_usd": 2.0,
        "spent_usd": 0.25,
        "in_flight_usd": 0.123457,
        "held_usd": 0.3,
        "committed_usd": 0.673457,
    }
    assert Budget().to_json()["limit_usd"] is None


def test_repr_leaves_out_the_reservations() -> None:
    budget = Budget(limit=1.0)
    budget.reserve("secret-job", 0.5)
    assert "secret-job" not in repr(budget)


@pytest.mark.parametrize("limit", [None, 0.01, 1, 10**6])
def test_limits_allowed(limit: float | None) -> None:
    check_limit(limit)
    assert Budget(limit=limit).limit == limit


@pytest.mark.parametrize(
    ("limit", "words"),
    [
        (0, "0 is not a limit"),
        (0.0, "0.0 is not a limit"),
        (-1.0, "-1.0 is not a limit"),
        (math.nan, "nan is not a limit"),
        (math.inf, "inf is not a limit"),
        (-math.inf, "-inf is not a limit"),
        (True, "True is not an amount"),
        ("5", "'5' is not an amount"),
    ],
)
def test_limits_refused(limit: object, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_limit(limit, "max_spend_usd")  # type: ignore[arg-type]
    error = caught.value
    assert error.errors[0].field == "max_spend_usd"
    assert words in str(error)
    assert str(error).endswith(" (allowed: a positive USD amount)")
    with pytest.raises(ValidationError, match="spend cap"):
        Budget(limit=limit)  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as default:
        check_limit(limit)  # type: ignore[arg-type]
    assert default.value.errors[0].field == "budget"


def test_the_tolerance_is_inclusive() -> None:
    assert Budget(limit=1.0).fits(1.0 + EPSILON)


def test_money_is_kept_to_a_billionth_and_shown_to_a_millionth() -> None:
    budget = Budget(limit=10.0)
    budget.reserve("a", 1.0)
    budget.settle("a", 0.1234567891234)
    budget.reserve("b", 0.9876543219876)
    budget.hold("b")
    assert budget.spent == 0.123456789
    assert budget.held == 0.987654322
    shown = budget.to_json()
    assert (shown["spent_usd"], shown["held_usd"]) == (0.123457, 0.987654)


def test_a_refusal_says_this_job_when_not_told_what() -> None:
    budget = Budget(limit=0.1)
    with pytest.raises(BudgetExceededError, match=r"^refused before submitting: this job is "):
        budget.reserve("a", 0.2)


def test_a_billed_cost_replaces_the_estimate_until_the_job_settles() -> None:
    budget = Budget(limit=1.0)
    budget.reserve("billed", 0.25)
    budget.revise("billed", 0.5)  # Fal's answer: billed twice the estimate
    assert (budget.in_flight, budget.spent) == (0.5, 0.0)
    assert not budget.fits(0.51)
    budget.revise("ghost", 0.3)  # a job never reserved: nothing to revise
    assert budget.in_flight == 0.5
    budget.settle("billed", 0.5)
    assert (budget.in_flight, budget.spent) == (0.0, 0.5)
