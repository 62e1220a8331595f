"""The retention timer's handler on a real Azurite: every registered model's old windows go."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton.functions.retention import expire_metric_rollups
from lepton.functions.services import Services
from lepton.shared.metrics import WindowRollup
from lepton.shared.settings import MetricsRetentionSettings, ModelStoreSettings
from tests.conftest import Storage

pytestmark = pytest.mark.azurite

NOW = 1_800_000_000
HOUR = 3600


def test_the_handler_deletes_windows_past_the_configured_retention(
    storage: Storage, tmp_path: Path
) -> None:
    services = Services.from_settings(storage.settings, ModelStoreSettings(cache_dir=tmp_path))
    for model in ("digits", "iris"):
        services.registry.register_version(
            model, "1.0.0", sha256="ab" * 32, size=1, blob_path=f"{model}/1.0.0/model.onnx"
        )
        for age_h in (30, 25, 23, 1):
            start = NOW - age_h * HOUR
            services.metrics.write(WindowRollup(model, "1.0.0", "r0", start, 10, requests=1))

    deleted = expire_metric_rollups(services, MetricsRetentionSettings(retention_hours=24), now=NOW)

    assert deleted == {"digits": 2, "iris": 2}
    for model in ("digits", "iris"):
        kept = services.metrics.read(model, 0, NOW + HOUR)
        assert sorted(NOW - r.window_start for r in kept) == [1 * HOUR, 23 * HOUR]
