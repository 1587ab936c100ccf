"""Baselines: a launch's metrics saved under a name, and tolerances such as ``p95 may grow by at most 20%``.

A tolerance names a metric, a direction and how far it may move from the
baseline: ``grow``/``rise``/``increase`` bounds it from above, ``drop``/
``fall``/``decrease`` from below. The amount is a percentage of the baseline
value (``p95 may grow by at most 20%``), or, for rates, percentage points
(``success_rate may drop by at most 1%``: 99.5% may become 98.5%, not 98.5% of
99.5%), or a figure in the metric's own unit (``p95 may grow by at most 50ms``).
As with thresholds, a figure computed from no samples, now or in the baseline,
is inconclusive (it fails: there was nothing to compare), and values are shown
at a precision where the comparison shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .metrics import Samples
from .thresholds import Kind, Threshold, digits_apart, format_gap, format_value, metric_kind, resolve_metric
from .verdicts import Verdict

_TOLERANCE = re.compile(
    r"^\s*(?P<metric>\S+)\s+may\s+(?P<direction>grow|rise|increase|drop|fall|decrease)\s+by\s+at\s+most\s+"
    r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>\S*)\s*$",
    re.IGNORECASE,
)
_UP = frozenset({"grow", "rise", "increase"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FORMAT = 1


@dataclass(frozen=True)
class Tolerance:
    """How far one metric may move from its baseline, in one direction."""

    expression: str
    metric: str
    upward: bool
    """True: the metric may grow by at most ``amount``; False: it may drop by at most ``amount``."""
    amount: float
    relative: bool
    """True: ``amount`` is a fraction of the baseline value; False: an absolute figure in base units."""
    kind: Kind

    @classmethod
    def parse(cls, expression: str, known_metrics: Mapping[str, float] | None = None) -> Tolerance:
        match = _TOLERANCE.match(expression)
        if not match:
            raise ConfigurationError(
                f"Tolerance {expression!r} is not of the form '<metric> may grow|drop by at most <amount>', "
                "for example 'p95 may grow by at most 20%' or 'success_rate may drop by at most 1%'."
            )
        metric = match["metric"] if "." in match["metric"] else match["metric"].lower()
        if known_metrics is not None:
            found = resolve_metric(metric, known_metrics)
            if found is None:
                raise ConfigurationError(
                    f"Tolerance {expression!r} names metric {metric!r}, which the baseline does not have. "
                    f"Known metrics: {', '.join(sorted(m for m in known_metrics if '.' not in m))}."
                )
            metric = found
        kind = metric_kind(metric.lower())
        upward = match["direction"].lower() in _UP
        unit = match["unit"]
        if unit == "%":
            # A rate moves in percentage points; anything else by a percentage of its baseline value.
            return cls(expression.strip(), metric, upward, float(match["amount"]) / 100, kind is not Kind.RATE, kind)
        try:
            absolute = Threshold.parse(f"{metric} <= {match['amount']}{unit}").value
        except ConfigurationError as error:
            raise ConfigurationError(
                f"Tolerance {expression!r}: give the amount as a percentage (20%) or in {metric}'s own unit. {error}"
            ) from None
        return cls(expression.strip(), metric, upward, absolute, False, kind)

    def limit(self, baseline: float) -> float:
        """The furthest the metric may go, given its baseline value."""
        step = abs(baseline) * self.amount if self.relative else self.amount
        return baseline + step if self.upward else baseline - step

    def _allowance(self) -> str:
        if self.relative:
            return f"{self.amount * 100:g}%"
        if self.kind is Kind.RATE:
            points = self.amount * 100
            return f"{points:g} percentage point" + ("" if points == 1 else "s")
        return format_value(self.amount, self.kind)

    def evaluate(
        self,
        baseline: Mapping[str, float],
        now: Mapping[str, float],
        samples: Mapping[str, Samples] | None = None,
        baseline_samples: Mapping[str, int] | None = None,
    ) -> Verdict:
        """Judge the metric now against its baseline; a figure of no samples (now or then) is inconclusive."""
        metric = resolve_metric(self.metric, now)
        if metric is None:
            raise ConfigurationError(
                f"Tolerance {self.expression!r}: this launch has no metric {self.metric!r} (the baseline has)."
            )
        basis = samples.get(metric) if samples is not None else None
        then = baseline_samples.get(metric) if baseline_samples is not None else None
        before, measured = baseline[metric], now[metric]
        limit = self.limit(before)
        comparison = "<=" if self.upward else ">="
        sign = "+" if self.upward else "-"
        if then == 0 or (basis is not None and basis.count == 0):
            expected = f"{metric} {comparison} baseline {sign} {self._allowance()}"
            why = "the baseline was measured over 0 samples" if then == 0 else f"there were {basis} now"
            message = f"{metric} vs baseline: nothing to compare, {why}"
            return Verdict(
                f"{metric} vs baseline", False, expected, "nothing to measure", "", message, inconclusive=True
            )
        extra = digits_apart(measured, limit, self.kind)

        def show(value: float) -> str:
            return format_value(value, self.kind, extra)

        passed = measured <= limit if self.upward else measured >= limit
        change = _change(before, measured, self.kind)
        over = f" over {basis}" if basis is not None else ""
        expected = f"{metric} {comparison} {show(limit)} (baseline {show(before)} {sign} {self._allowance()})"
        measured_text = f"{show(measured)}{over} ({change} from baseline)"
        miss = "" if passed else format_gap(abs(measured - limit), self.kind)
        if passed:
            message = f"{metric}: baseline {show(before)}, now {show(measured)}{over} ({change}): within tolerance"
        else:
            bound = "at most" if self.upward else "at least"
            message = (
                f"{metric} regressed: baseline {show(before)}, now {show(measured)}{over} ({change}); "
                f"{self.expression!r} allows {bound} {show(limit)}, missed by {miss}"
            )
        return Verdict(f"{metric} vs baseline", passed, expected, measured_text, miss, message, value=measured)


def _change(before: float, after: float, kind: Kind) -> str:
    if kind is Kind.RATE:
        return f"{(after - before) * 100:+.2f} percentage points"
    if before == 0:
        return f"{'+' if after >= 0 else '-'}{format_value(abs(after), kind)}"
    return f"{(after - before) / abs(before) * 100:+.1f}%"


def compare_to_baseline(
    expressions: list[str],
    baseline: Mapping[str, float],
    now: Mapping[str, float],
    samples: Mapping[str, Samples] | None = None,
    baseline_samples: Mapping[str, int] | None = None,
) -> list[Verdict]:
    """Parse every tolerance first (a typo fails before anything is judged), then judge each."""
    tolerances = parse_tolerances(expressions, baseline)
    return [tolerance.evaluate(baseline, now, samples, baseline_samples) for tolerance in tolerances]


def parse_tolerances(expressions: list[str], baseline: Mapping[str, float]) -> list[Tolerance]:
    """Every tolerance parsed, each metric named among the baseline's; none at all is an error."""
    if not expressions:
        raise ConfigurationError("Give at least one tolerance, e.g. 'p95 may grow by at most 20%'.")
    return [Tolerance.parse(expression, baseline) for expression in expressions]


@dataclass(frozen=True)
class Baseline:
    """Metrics saved under a name, with where they came from."""

    name: str
    metrics: dict[str, float]
    source: str
    """What was measured, e.g. the test and launch."""
    saved: str
    """When, as an ISO 8601 UTC time."""
    samples: dict[str, int] = field(default_factory=dict)
    """How many samples each figure was computed from (absent from baselines saved before it was recorded)."""

    @staticmethod
    def file(directory: Path, name: str) -> Path:
        if not _NAME.match(name):
            raise ConfigurationError(
                f"Baseline name {name!r} must be letters, digits, '_', '.' or '-' (it names a file), e.g. 'nightly'."
            )
        return directory / f"{name}.json"

    def save(self, directory: Path) -> Path:
        path = self.file(directory, self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "format": _FORMAT,
            "name": self.name,
            "source": self.source,
            "saved": self.saved,
            "metrics": self.metrics,
            "samples": self.samples,
        }
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    @classmethod
    def of(
        cls, name: str, metrics: Mapping[str, float], source: str, samples: Mapping[str, Samples] | None = None
    ) -> Baseline:
        cls.file(Path("."), name)
        counts = {metric: basis.count for metric, basis in (samples or {}).items()}
        return cls(name, dict(metrics), source, datetime.now(UTC).isoformat(timespec="seconds"), counts)

    @classmethod
    def load(cls, directory: Path, name: str) -> Baseline:
        path = cls.file(directory, name)
        try:
            record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            saved = sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []
            raise ConfigurationError(
                f"No baseline {name!r} in {directory} (saved there: {', '.join(saved) or 'none'}). "
                "Save one first with Save Metrics As Baseline."
            ) from None
        except json.JSONDecodeError as error:
            raise ConfigurationError(f"Baseline file {path} is not valid JSON ({error}); save it again.") from None
        if record.get("format") != _FORMAT or not isinstance(record.get("metrics"), dict):
            raise ConfigurationError(f"Baseline file {path} is not a Stampede baseline (format {_FORMAT}).")
        return cls(
            name,
            {k: float(v) for k, v in record["metrics"].items()},
            record.get("source", ""),
            record.get("saved", ""),
            {k: int(v) for k, v in record.get("samples", {}).items()},
        )
