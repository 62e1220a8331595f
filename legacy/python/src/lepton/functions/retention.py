"""The metric-rollup retention job (DESIGN §8): the body of the Functions app's timer function.

Each run deletes every model's rollup windows that started more than
``LEPTON_METRICS_RETENTION_HOURS`` ago, so the ``metrics`` table does not grow without bound. The
Functions host runs it on the NCRONTAB schedule ``LEPTON_METRICS_RETENTION_SCHEDULE`` (see
:mod:`~lepton.functions.blueprint`); the local stack, which has no Functions host, runs the same
function periodically. A run is idempotent, so an overlapping or repeated run is harmless.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from lepton.functions.services import Services
from lepton.shared.metrics import expire_rollups
from lepton.shared.settings import MetricsRetentionSettings

# The timer function's name in the Functions app (and the local stack's name for it).
METRICS_RETENTION_TIMER: Final = "expire_metric_rollups"

_log = logging.getLogger(__name__)


def expire_metric_rollups(
    services: Services, settings: MetricsRetentionSettings, *, now: float | None = None
) -> dict[str, int]:
    """Delete rollups older than the retention; returns the rows deleted per model."""
    deleted = expire_rollups(
        services.metrics,
        services.registry.list_models(),
        now=time.time() if now is None else now,
        retention_s=settings.retention_s,
    )
    _log.info(
        "metric rollups older than %dh deleted: %s",
        settings.retention_hours,
        deleted or "none",
    )
    return deleted
