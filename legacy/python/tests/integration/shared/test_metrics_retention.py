"""Metric rollup retention on a real Azurite: only windows older than the retention go."""

from __future__ import annotations

from typing import Any

import pytest

from lepton.shared.metrics import MetricsStore, WindowRollup, expire_rollups
from lepton.shared.storage import METRICS_TABLE
from tests.conftest import Storage

pytestmark = pytest.mark.azurite

NOW = 1_800_000_000  # a fixed "now" (unix seconds): the test never depends on the clock
DAY = 86_400
WEEK = 7 * DAY


def _write(store: MetricsStore, model: str, starts: range, replicas: int = 1) -> None:
    for start in starts:
        for replica in range(replicas):
            store.write(WindowRollup(model, "1.0.0", f"r{replica}", start, 10, requests=1))


def _starts(store: MetricsStore, model: str) -> list[int]:
    return sorted(r.window_start for r in store.read(model, 0, NOW + DAY))


def test_only_windows_older_than_the_retention_are_deleted(storage: Storage) -> None:
    store = MetricsStore(storage.tables)
    cutoff = NOW - WEEK
    # 75 old windows x 2 replicas = 150 rows: more than one 100-row transaction.
    _write(store, "digits", range(cutoff - 750, cutoff, 10), replicas=2)
    _write(store, "digits", range(cutoff, cutoff + 30, 10))  # at the cutoff or newer: kept
    _write(store, "iris", range(cutoff - 20, cutoff + 20, 10))
    _write(store, "idle", range(NOW - 60, NOW, 10))  # nothing old

    deleted = expire_rollups(store, ["digits", "iris", "idle", "unused"], now=NOW, retention_s=WEEK)

    assert deleted == {"digits": 150, "iris": 2}
    assert _starts(store, "digits") == [cutoff, cutoff + 10, cutoff + 20]
    assert _starts(store, "iris") == [cutoff, cutoff + 10]
    assert len(_starts(store, "idle")) == 6
    # A second run finds nothing left to delete.
    assert expire_rollups(store, ["digits", "iris", "idle"], now=NOW, retention_s=WEEK) == {}


def test_rows_deleted_by_someone_else_in_between_do_not_fail_the_run(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MetricsStore(storage.tables)
    _write(store, "digits", range(NOW - WEEK - 100, NOW - WEEK, 10))
    table = storage.tables.get_table_client(METRICS_TABLE)
    real_query = store._table.query_entities

    def stale_query(*args: Any, **kwargs: Any) -> list[Any]:
        # What a concurrent pruner leaves behind: the listing still names a row it deleted.
        rows = list(real_query(*args, **kwargs))
        table.delete_entity(rows[0]["PartitionKey"], rows[0]["RowKey"])
        return rows

    monkeypatch.setattr(store._table, "query_entities", stale_query)
    store.delete_older_than("digits", NOW - WEEK)
    monkeypatch.undo()

    assert _starts(store, "digits") == []
