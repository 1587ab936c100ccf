"""Keywords that save a launch's metrics as a baseline and fail when a later launch regressed from it."""

from __future__ import annotations

from pathlib import Path

from robot.api.deco import keyword

from stampede.baselines import Baseline, compare_to_baseline, parse_tolerances

from ..component import LibraryComponent
from ..runtime import LaunchRecord


class BaselineKeywords(LibraryComponent):
    def _directory(self, path: str | None) -> Path:
        return Path(path) if path else self.output_dir / "baselines"

    @keyword(tags=["thresholds", "baselines"])
    def save_metrics_as_baseline(
        self, name: str, path: str | None = None, launch: LaunchRecord | int | None = None
    ) -> str:
        """Saves every metric of this test's launch (or ``launch``) as baseline ``name``; returns the file written.

        The baseline is a JSON file ``<name>.json`` in ``path`` (by default
        ``${OUTPUT DIR}/baselines``); saving again under the same name replaces
        it. Later runs compare against it with `Metrics Should Not Regress`:
        keep the file (commit it, or give a ``path`` outside the output
        directory) so the next run finds it.

        | Launch Agents | deduct | 20 |
        | Save Metrics As Baseline | nightly |
        | Save Metrics As Baseline | nightly | path=${CURDIR}/baselines |
        """
        record = self.launch_record(launch)
        test = self.variable("TEST NAME") or self.variable("SUITE NAME", "suite")
        source = f"{test}, launch {record.number} of {record.tool.name!r} ({record.result.plan.describe()})"
        saved = Baseline.of(name, record.summary.metrics, source, record.summary.samples).save(self._directory(path))
        self.log(f"Saved {len(record.summary.metrics)} metrics of launch {record.number} as baseline {name!r}: {saved}")
        return str(saved)

    @keyword(tags=["thresholds", "baselines"])
    def metrics_should_not_regress(
        self, *tolerances: str, baseline: str, path: str | None = None, launch: LaunchRecord | int | None = None
    ) -> None:
        """Fails when a metric of this test's latest launch (or ``launch``) moved past its tolerance from ``baseline``.

        A tolerance is ``<metric> may grow|drop by at most <amount>`` (also
        rise/increase, fall/decrease). The amount is a percentage of the
        baseline value (``p95 may grow by at most 20%``), for rates percentage
        points (``success_rate may drop by at most 1%``: 99.5% may become
        98.5%), or a figure in the metric's unit (``p95 may grow by at most
        50ms``). Metrics are those of `Thresholds Should Hold`. The table logged
        shows, per tolerance, the limit, the baseline and the value now; the
        failure names each regressed metric with both values. Give
        ``baseline`` (and ``path``, if it was saved elsewhere) after the tolerances.

        | Metrics Should Not Regress | p95 may grow by at most 20% | baseline=nightly |
        | Metrics Should Not Regress | success_rate may drop by at most 1% | p99 may grow by at most 50ms | baseline=a |
        """
        saved = Baseline.load(self._directory(path), baseline)
        parse_tolerances(list(tolerances), saved.metrics)  # a misspelt tolerance fails as such, launch or no launch
        record = self.launch_record(launch)
        verdicts = compare_to_baseline(
            list(tolerances), saved.metrics, record.summary.metrics, record.summary.samples, saved.samples
        )
        self.log(f"Baseline {baseline!r}: {saved.source}, saved {saved.saved}.")
        self.judge(*verdicts, caption=f"Launch {record.number} against baseline {baseline!r}")
