"""Routing: stable sticky buckets, weights in basis points, only ready versions, shadow sampling."""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from lepton.gpuworker.router import RouteTable, effective_routes, sticky_bucket
from lepton.shared.records import Routes


def test_sticky_bucket_is_the_documented_stable_hash() -> None:
    # The contract every replica (and any other implementation) must share: BLAKE2b-64 of
    # "model NUL key", big-endian, modulo 10000. A change would move every sticky caller.
    for model, key in (("digits", "user-42"), ("fraud-v2", "ü-ñ"), ("m", "")):
        digest = hashlib.blake2b(f"{model}\x00{key}".encode(), digest_size=8).digest()
        assert sticky_bucket(model, key) == int.from_bytes(digest, "big") % 10_000
    buckets = {sticky_bucket("digits", f"user-{i}") for i in range(2000)}
    assert min(buckets) >= 0 and max(buckets) < 10_000
    assert len(buckets) > 1500  # spread, not clumped


@settings(max_examples=200, deadline=None)
@given(
    key=st.text(min_size=1, max_size=40),
    weights=st.lists(st.integers(0, 10_000), min_size=2, max_size=6),
)
def test_a_sticky_caller_never_leaves_the_candidate_as_weight_grows(
    key: str, weights: list[int]
) -> None:
    served = [RouteTable("m", "1.0.0", "1.1.0", w).pick(key, draw_bp=0) for w in sorted(weights)]
    first_candidate = served.index("1.1.0") if "1.1.0" in served else len(served)
    assert all(v == "1.0.0" for v in served[:first_candidate])
    assert all(v == "1.1.0" for v in served[first_candidate:])


def test_unkeyed_split_matches_the_weight() -> None:
    rng = random.Random(7)
    table = RouteTable("m", "1.0.0", "1.1.0", 2_500)
    n = 20_000
    hits = sum(table.pick(None, rng.randrange(10_000)) == "1.1.0" for _ in range(n))
    assert binomtest(hits, n, 0.25).pvalue > 0.001


def test_keyed_split_matches_the_weight_over_many_callers() -> None:
    table = RouteTable("m", "1.0.0", "1.1.0", 1_000)
    n = 20_000
    hits = sum(table.pick(f"caller-{i}", 0) == "1.1.0" for i in range(n))
    assert binomtest(hits, n, 0.10).pvalue > 0.001


def test_zero_and_full_weight() -> None:
    assert RouteTable("m", "1.0.0", "1.1.0", 0).pick(None, 0) == "1.0.0"
    assert RouteTable("m", "1.0.0", "1.1.0", 10_000).pick(None, 9_999) == "1.1.0"
    assert RouteTable("m", None).pick(None, 0) is None


def test_new_production_serves_only_once_ready_and_the_old_one_bridges() -> None:
    previous = RouteTable("m", "1.0.0")
    stored = Routes("m", production="2.0.0", generation=3)
    table = effective_routes(stored, lambda v: v == "1.0.0", previous)
    assert table.production == "1.0.0" and table.generation == 3
    table = effective_routes(stored, lambda v: True, table)
    assert table.production == "2.0.0"


def test_candidate_gets_no_share_until_ready_and_everything_without_production() -> None:
    stored = Routes("m", production="1.0.0", candidate="1.1.0", candidate_weight_bp=500)
    assert effective_routes(stored, lambda v: v == "1.0.0", None).candidate_weight_bp == 0
    ready = effective_routes(stored, lambda v: True, None)
    assert (ready.candidate, ready.candidate_weight_bp) == ("1.1.0", 500)
    alone = effective_routes(stored, lambda v: v == "1.1.0", None)
    assert alone.production is None and alone.candidate_weight_bp == 10_000
    assert alone.pick(None, 9_999) == "1.1.0"


def test_shadow_sampling_and_never_mirroring_to_itself() -> None:
    stored = Routes("m", production="1.0.0", shadow="1.1.0", shadow_fraction_bp=3_000)
    table = effective_routes(stored, lambda v: True, None)
    assert table.mirrors(2_999, "1.0.0") == "1.1.0"
    assert table.mirrors(3_000, "1.0.0") is None
    assert table.mirrors(0, "1.1.0") is None
    not_ready = effective_routes(stored, lambda v: v == "1.0.0", None)
    assert not_ready.mirrors(0, "1.0.0") is None
