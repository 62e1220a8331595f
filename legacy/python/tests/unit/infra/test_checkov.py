"""checkov's static analysis passes over infra/bicep and docker/, having parsed every file.

checkov drops a file its parser cannot read without failing, so besides zero failed checks the
tests assert which files it parsed and that its checks really ran. Every skip must be a Bicep
line comment (``// checkov:skip=CKV_...: reason``; ``#`` lines do not compile) with a reason, and
every skip comment must still match a check it suppresses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.infra._bicep import BICEP_DIR, REPO_ROOT, load_all

REPORT_SCRIPT = Path(__file__).with_name("_checkov_report.py")
DOCKER_DIR = REPO_ROOT / "docker"
SKIP_COMMENT = re.compile(r"checkov:skip=")
WELL_FORMED_SKIP = re.compile(r"^\s*// checkov:skip=(?P<id>CKV2?_[A-Z]+_\d+): (?P<reason>.{20,})$")
# With the ARM checks registered checkov runs dozens on these templates; a handful means the
# check registry did not load and the "zero failures" would be hollow.
MIN_BICEP_PASSED = 20


def checkov_report(framework: str, folder: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(REPORT_SCRIPT), framework, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, f"checkov failed to run:\n{result.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.fixture(scope="module")
def bicep_report() -> dict[str, Any]:
    return checkov_report("bicep", BICEP_DIR)


@pytest.fixture(scope="module")
def dockerfile_report() -> dict[str, Any]:
    return checkov_report("dockerfile", DOCKER_DIR)


def skip_comment_problems(name: str, text: str) -> tuple[list[str], set[tuple[str, str]]]:
    """(malformed skip comments, {(file, check id)} of the well-formed ones)."""
    problems, skips = [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not SKIP_COMMENT.search(line):
            continue
        match = WELL_FORMED_SKIP.match(line)
        if match is None:
            problems.append(
                f"{name}:{number}: write '// checkov:skip=CKV_AZURE_N: <why, in a sentence>'"
            )
        else:
            skips.add((name, match["id"]))
    return problems, skips


def test_checkov_parsed_every_template(bicep_report: dict[str, Any]) -> None:
    expected = sorted((BICEP_DIR / name).resolve().as_posix() for name in load_all())
    assert bicep_report["parsing_errors"] == []
    assert bicep_report["parsed_files"] == expected


def test_checkov_ran_its_azure_checks(bicep_report: dict[str, Any]) -> None:
    assert bicep_report["passed"] >= MIN_BICEP_PASSED


def test_checkov_finds_no_failed_checks(bicep_report: dict[str, Any]) -> None:
    assert bicep_report["failed"] == []


def test_every_skip_carries_a_reason(bicep_report: dict[str, Any]) -> None:
    for skip in bicep_report["skipped"]:
        reason = (skip["suppress_comment"] or "").strip()
        assert len(reason) >= 20 and reason != "No comment provided", skip


def test_skip_comments_are_well_formed_and_all_used(bicep_report: dict[str, Any]) -> None:
    problems, commented = [], set()
    for name, template in load_all().items():
        found, skips = skip_comment_problems(name, template.text)
        problems += found
        commented |= skips
    assert problems == []
    used = {
        (Path(s["file"]).relative_to(BICEP_DIR.resolve()).as_posix(), s["check_id"])
        for s in bicep_report["skipped"]
    }
    assert commented == used


def test_a_skip_without_a_reason_or_in_a_hash_comment_is_caught() -> None:
    text = (
        "  // checkov:skip=CKV_AZURE_35\n  #checkov:skip=CKV_AZURE_59: fine, it is a dev account\n"
    )
    problems, skips = skip_comment_problems("x.bicep", text)
    assert [p.split(":", 2)[1] for p in problems] == ["1", "2"]
    assert skips == set()


def test_checkov_dockerfile_checks_pass(dockerfile_report: dict[str, Any]) -> None:
    assert dockerfile_report["parsing_errors"] == []
    assert dockerfile_report["parsed_files"] == sorted(
        p.resolve().as_posix() for p in DOCKER_DIR.glob("*.Dockerfile")
    )
    assert dockerfile_report["failed"] == []
    assert dockerfile_report["skipped"] == []
    assert dockerfile_report["passed"] > 0


def test_checkov_report_shows_a_failed_check_and_an_unparsed_file(tmp_path: Path) -> None:
    # The same scan over a copy with one weakened and one unparseable template: proves the
    # assertions above would see both kinds of problem.
    copy = tmp_path / "bicep"
    for name, template in load_all().items():
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        text = template.text
        if name == "modules/storage.bicep":
            text = text.replace("minimumTlsVersion: 'TLS1_2'", "minimumTlsVersion: 'TLS1_0'")
        if name == "modules/identity.bicep":
            text = text.replace("param name string", "param name")
        target.write_text(text, encoding="utf-8")
    report = checkov_report("bicep", copy)
    broken = (copy / "modules/identity.bicep").resolve().as_posix()
    assert report["parsing_errors"] == [broken]
    assert broken not in report["parsed_files"]
    assert [(f["check_id"], f["resource"]) for f in report["failed"]] == [
        ("CKV_AZURE_44", "Microsoft.Storage/storageAccounts.storage")
    ]
