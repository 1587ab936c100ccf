"""Running under pabot: which process this is, and where the run's files go.

pabot runs each suite in a ``robot`` process of its own with
``--outputdir <outputdir>/pabot_results/<n>`` and ``--variable PABOTQUEUEINDEX:<n>``,
then merges only the output.xml files into ``<outputdir>``. Stampede writes its
histories, metrics and baselines to ``<outputdir>`` itself, so the merged log's links
reach them and baselines outlive the run; every file name carries the process's run id.
"""

from __future__ import annotations

from pathlib import Path

from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError

PABOT_RESULTS = "pabot_results"


def _variable(name: str) -> str | None:
    try:
        value = BuiltIn().get_variable_value("${" + name + "}")
    except RobotNotRunningError:
        return None
    return None if value is None else str(value)


def pabot_process() -> str | None:
    """``p<n>`` in pabot's n-th ``robot`` process (one per suite it hands out), else None."""
    index = _variable("PABOTQUEUEINDEX")
    return f"p{index}" if index is not None and index.isdigit() else None


def results_dir() -> Path:
    """Where Stampede writes its files: ``${OUTPUT DIR}``, or under pabot the folder pabot merges into."""
    output_dir = Path(_variable("OUTPUT DIR") or "results")
    if pabot_process() is not None and output_dir.parent.name == PABOT_RESULTS:
        return output_dir.parent.parent
    return output_dir
