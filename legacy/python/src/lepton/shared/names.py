"""Model names and strict SemVer 2.0.0 versions.

Both end up in blob paths and table keys, so anything outside the grammar is refused before any
write. Versions order by SemVer precedence; :attr:`SemVer.sort_key` encodes that order as a string
whose plain lexicographic order matches, so a Table RowKey lists versions correctly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import total_ordering

from lepton.shared.errors import InvalidModelName, InvalidVersion

MODEL_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
_MODEL_NAME_RE = re.compile(MODEL_NAME_PATTERN)

# The official SemVer 2.0.0 regular expression (semver.org), anchored, no leading "v".
_SEMVER_RE = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
# Ten digits cover every numeric field a Table key can carry sensibly; larger ones are refused
# rather than silently mis-sorted.
_MAX_NUMERIC = 9_999_999_999


def validate_model_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise :class:`InvalidModelName`."""
    if not isinstance(name, str) or not _MODEL_NAME_RE.match(name):
        raise InvalidModelName(
            f"invalid model name {name!r}: use 1-63 lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit (e.g. 'digits' or 'fraud-v2')"
        )
    return name


class Bump(StrEnum):
    """Which SemVer field changed between production and a candidate."""

    MAJOR = "major"
    MINOR = "minor"
    PATCH = "patch"
    INITIAL = "initial"  # no production version yet


@total_ordering
@dataclass(frozen=True)
class SemVer:
    """A strict SemVer 2.0.0 version; equality and ordering follow SemVer precedence."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, text: str) -> SemVer:
        if not isinstance(text, str):
            raise InvalidVersion(f"invalid version {text!r}: expected a string like '1.2.3'")
        match = _SEMVER_RE.match(text)
        if match is None:
            raise InvalidVersion(
                f"invalid version {text!r}: use strict SemVer 2.0.0, MAJOR.MINOR.PATCH with "
                "optional -prerelease and +build (e.g. '1.4.0', '2.0.0-rc.1'); no leading 'v', "
                "no leading zeros"
            )
        numbers = [int(match[k]) for k in ("major", "minor", "patch")]
        pre = tuple(match["pre"].split(".")) if match["pre"] else ()
        too_big = [n for n in numbers if n > _MAX_NUMERIC] + [
            int(p) for p in pre if p.isdigit() and int(p) > _MAX_NUMERIC
        ]
        if too_big:
            raise InvalidVersion(
                f"invalid version {text!r}: numeric fields must be ≤ {_MAX_NUMERIC}"
            )
        build = tuple(match["build"].split(".")) if match["build"] else ()
        return cls(numbers[0], numbers[1], numbers[2], pre, build)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    @property
    def sort_key(self) -> str:
        """A string whose lexicographic order is SemVer precedence (build metadata ignored).

        Numeric identifiers are zero-padded and sort before alphanumeric ones; ``!`` separates
        identifiers because it sorts below every identifier character, so a shorter pre-release
        list sorts first; a release ends in ``~``, above any pre-release.
        """
        core = f"{self.major:010d}.{self.minor:010d}.{self.patch:010d}"
        if not self.prerelease:
            return core + "~"
        parts = [f"0{int(p):010d}" if p.isdigit() else f"1{p}" for p in self.prerelease]
        return core + "!" + "!".join(parts)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.sort_key < other.sort_key

    def bump_from(self, production: SemVer | None) -> Bump:
        """The kind of change from ``production`` to this version (which picks the rollout path)."""
        if production is None:
            return Bump.INITIAL
        if self.major != production.major:
            return Bump.MAJOR
        if self.minor != production.minor:
            return Bump.MINOR
        return Bump.PATCH


def parse_version(text: str) -> SemVer:
    """Parse ``text`` as strict SemVer 2.0.0 or raise :class:`InvalidVersion`."""
    return SemVer.parse(text)
