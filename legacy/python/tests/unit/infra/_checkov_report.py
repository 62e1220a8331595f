"""Run checkov over one folder with one framework and print a JSON summary of the results.

The infra tests run this in a subprocess: checkov's imports raise DeprecationWarnings that pytest
(warnings as errors) would turn into failures, and its CLI JSON does not say which files it
scanned. Through the runner API the summary also lists every file checkov parsed, so a test can
prove no template was skipped. Usage: ``python _checkov_report.py {bicep|dockerfile} FOLDER``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# Offline and reproducible: no download of Prisma Cloud guideline mappings.
os.environ.setdefault("BC_SKIP_MAPPING", "TRUE")

# ARM resource checks register themselves for Bicep too, but only once imported (as the CLI does).
import checkov.arm.checks  # noqa: F401
from checkov.bicep.runner import Runner as BicepRunner
from checkov.dockerfile.runner import Runner as DockerfileRunner
from checkov.runner_filter import RunnerFilter

RUNNERS: dict[str, Any] = {"bicep": BicepRunner, "dockerfile": DockerfileRunner}


def _record(record: Any) -> dict[str, Any]:
    return {
        "check_id": record.check_id,
        "file": Path(record.file_abs_path).resolve().as_posix(),
        "resource": record.resource,
        "suppress_comment": record.check_result.get("suppress_comment"),
    }


def main(framework: str, folder: str) -> None:
    root = Path(folder).resolve()
    runner = RUNNERS[framework]()
    report = runner.run(
        root_folder=str(root),
        runner_filter=RunnerFilter(framework=[framework], show_progress_bar=False),
    )
    reports = report if isinstance(report, list) else [report]
    [report] = [r for r in reports if r.check_type == framework]
    parsed = {Path(e.file_abs_path).resolve().as_posix() for e in report.extra_resources}
    records = report.passed_checks + report.failed_checks + report.skipped_checks
    parsed |= {Path(r.file_abs_path).resolve().as_posix() for r in records}
    # Resources checkov saw that had no record (e.g. parameters) are "<path>:<id>", path from cwd.
    parsed |= {Path(r.rsplit(":", 1)[0]).resolve().as_posix() for r in report.resources}
    summary = {
        "parsed_files": sorted(parsed),
        "parsing_errors": sorted(report.parsing_errors),
        "passed": len(report.passed_checks),
        "failed": [_record(r) for r in report.failed_checks],
        "skipped": [_record(r) for r in report.skipped_checks],
    }
    json.dump(summary, sys.stdout, indent=2)


if __name__ == "__main__":
    main(*sys.argv[1:3])
