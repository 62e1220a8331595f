"""Model names and strict SemVer 2.0.0: grammar, ordering, and the Table sort key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lepton.shared.errors import InvalidModelName, InvalidVersion
from lepton.shared.names import Bump, SemVer, validate_model_name


@pytest.mark.parametrize("name", ["a", "digits", "fraud-v2", "a" * 63, "0abc9"])
def test_valid_model_names(name: str) -> None:
    assert validate_model_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "Digits", "-a", "a-", "a_b", "a" * 64, "../etc", "a/b", "a.b", "a b", "ä"],
)
def test_invalid_model_names_say_what_is_allowed(name: str) -> None:
    with pytest.raises(InvalidModelName, match="lowercase letters, digits and hyphens"):
        validate_model_name(name)


@pytest.mark.parametrize(
    "text",
    [
        "1.0.0",
        "0.0.1",
        "10.20.30",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-0.3.7",
        "1.0.0-x.7.z.92",
        "1.0.0+20130313144700",
        "1.0.0-beta+exp.sha.5114f85",
        "1.0.0-x-y-z.--",
    ],
)
def test_valid_versions_round_trip(text: str) -> None:
    assert str(SemVer.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "1.0",
        "v1.0.0",
        "01.0.0",
        "1.01.0",
        "1.0.0-",
        "1.0.0-01",
        "1.0.0+",
        "1.0.0-a..b",
        "1.0.0 ",
        "../1.0.0",
        "1.0.0/evil",
        "99999999999.0.0",
        "",
    ],
)
def test_invalid_versions_are_refused_with_the_grammar(text: str) -> None:
    with pytest.raises(InvalidVersion, match=r"invalid version"):
        SemVer.parse(text)


def test_spec_precedence_example() -> None:
    # The ordering example from semver.org §11.
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "2.0.0",
        "2.1.0",
        "2.1.1",
    ]
    parsed = [SemVer.parse(v) for v in ordered]
    assert sorted(reversed(parsed)) == parsed
    keys = [v.sort_key for v in parsed]
    assert sorted(keys) == keys


def test_build_metadata_is_ignored_for_precedence() -> None:
    a, b = SemVer.parse("1.0.0+a"), SemVer.parse("1.0.0+b")
    assert a == b
    assert a.sort_key == b.sort_key
    assert str(a) != str(b)


def test_bump_kind() -> None:
    prod = SemVer.parse("1.2.3")
    assert SemVer.parse("1.2.4").bump_from(prod) is Bump.PATCH
    assert SemVer.parse("1.3.0").bump_from(prod) is Bump.MINOR
    assert SemVer.parse("2.0.0").bump_from(prod) is Bump.MAJOR
    assert SemVer.parse("1.0.0").bump_from(None) is Bump.INITIAL


_ident = st.one_of(
    st.integers(min_value=0, max_value=10**6).map(str),
    st.from_regex(r"[a-zA-Z-][0-9a-zA-Z-]{0,5}", fullmatch=True),
)
_versions = st.builds(
    lambda ma, mi, pa, pre: f"{ma}.{mi}.{pa}" + ("-" + ".".join(pre) if pre else ""),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.lists(_ident, max_size=4),
)


def _reference_key(v: SemVer) -> tuple[object, ...]:
    # Independent statement of SemVer §11 precedence, compared against sort_key.
    pre: tuple[object, ...]
    if not v.prerelease:
        pre = ((2,),)
    else:
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in v.prerelease)
        pre = ((1, pre),)
    return (v.major, v.minor, v.patch, pre)


@given(_versions, _versions)
def test_sort_key_order_matches_semver_precedence(a: str, b: str) -> None:
    va, vb = SemVer.parse(a), SemVer.parse(b)
    ref_a, ref_b = _reference_key(va), _reference_key(vb)
    ka, kb = va.sort_key, vb.sort_key
    assert (ka < kb) == (ref_a < ref_b)  # type: ignore[operator]
    assert (ka == kb) == (ref_a == ref_b)
