"""Conservation: the final balance equals the initial one minus every successful deduction."""

from __future__ import annotations

from collections.abc import Callable

from ..history import History, Operation
from ..verdicts import Verdict
from ._report import plural


def check_conservation(
    initial: int,
    final: int,
    history: History,
    amount_of: Callable[[Operation], int],
    *,
    unit: str = "credits",
) -> Verdict:
    """Check ``final == initial - sum(amount_of(op))`` over the successful operations.

    A failed operation is taken to have changed nothing. More left than expected
    means successful deductions were lost (typically overwritten by a concurrent
    writer); less means something took more than the recorded deductions.
    """
    successful = history.successful()
    deducted = sum(amount_of(op) for op in successful)
    expected_final = initial - deducted
    difference = final - expected_final
    basis = f"{initial} at the start minus {deducted} taken by {plural(len(successful), 'successful deduction')}"
    details = [
        {
            "initial": initial,
            "successful deductions": len(successful),
            "deducted in total": deducted,
            "expected final": expected_final,
            "actual final": final,
            "difference": difference,
        }
    ]
    if difference == 0:
        miss = ""
        message = f"{unit.capitalize()} add up: expected {expected_final} ({basis}), found {final}."
    elif difference > 0:
        miss = f"{difference} {unit} too many"
        message = (
            f"{unit.capitalize()} do not add up: expected {expected_final} ({basis}), found {final}: "
            f"{difference} {unit} appeared that no deduction accounts for, so successful deductions "
            "were lost (for example overwritten by a concurrent writer)."
        )
    else:
        miss = f"{-difference} {unit} too few"
        message = (
            f"{unit.capitalize()} do not add up: expected {expected_final} ({basis}), found {final}: "
            f"{-difference} {unit} disappeared that no successful deduction accounts for (for example "
            "a deduction applied twice, or a failed one that still took effect)."
        )
    return Verdict(
        "conservation",
        difference == 0,
        f"{expected_final} {unit}",
        f"{final} {unit}",
        miss,
        message,
        details,
    )
