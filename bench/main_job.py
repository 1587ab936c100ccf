"""The main job: wall time of the README's main command, scripts/run-suites, from a clean clone.

Clones the repository's committed HEAD into a temporary folder and runs scripts/run-suites
there (it creates .venv, installs the pinned requirements, then runs robot on suites/ with
the embedded services, their start-up included). Reports the setup and the robot run apart
and together, and robot's own test counts. Target: under 5 minutes.

Run: .venv/bin/python bench/main_job.py [--keep] [-- extra robot arguments]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, machine_line

TARGET_SECONDS = 300.0
REPOSITORY = Path(__file__).resolve().parents[1]


def timed(command: list[str], cwd: Path, log: Path) -> tuple[float, int]:
    started = time.monotonic()
    with log.open("w") as output:
        completed = subprocess.run(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, timeout=3600, check=False)
    return time.monotonic() - started, completed.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the clone (its results/ and logs)")
    parser.add_argument("robot_args", nargs="*", help="extra arguments for robot, after --")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    folder = Path(tempfile.mkdtemp(prefix="stampede-main-job-"))
    folder.chmod(0o755)  # run as root, the embedded PostgreSQL runs as 'nobody', who must reach the clone's .venv
    clone = folder / "stampede"
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)], check=True, timeout=300)
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True, check=True
        ).stdout.strip()
        setup_s, setup_code = timed(["scripts/setup-env"], clone, folder / "setup.log")
        if setup_code != 0:
            raise SystemExit(f"scripts/setup-env failed ({setup_code}); see {folder / 'setup.log'}")
        # What scripts/run-suites runs once .venv is set up (its setup-env step is then a quick no-op check).
        robot_s, robot_code = timed(["scripts/run-suites", *args.robot_args], clone, folder / "robot.log")
        counts = re.findall(
            r"^(\d+ tests?, \d+ passed, \d+ failed.*)$", (folder / "robot.log").read_text(), re.MULTILINE
        )
        print(
            f"commit {commit}: setup-env {setup_s:.0f} s (fresh .venv, pip cache as found); run-suites "
            f"{robot_s:.0f} s, robot exit code {robot_code}, {counts[-1] if counts else 'no test counts found'}"
        )
        total = setup_s + robot_s
        # A run whose suites did not all pass is no measure of the main job: it may have stopped early.
        passed = robot_code == 0
        if not passed:
            print(
                f"robot failed (exit code {robot_code}): the times below do not count; see {folder / 'robot.log'}"
                f"{'' if args.keep else ' (rerun with --keep to keep it)'}"
            )
        figure(
            "main job, scripts/run-suites from a clean clone (setup + suites)",
            f"{total:.0f} s",
            f"< {TARGET_SECONDS:g} s",
            passed and total < TARGET_SECONDS,
        )
        figure(
            "main job, the suites alone (services start-up included)",
            f"{robot_s:.0f} s",
            f"< {TARGET_SECONDS:g} s",
            passed and robot_s < TARGET_SECONDS,
        )
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
