"""What the Event Grid blob trigger does with a new blob in the ``models`` container.

Only ``models/{model}/{version}/model.onnx`` starts a lifecycle (manifests and other files are
ignored); the start is idempotent per content, so Event Grid's at-least-once delivery never runs a
second lifecycle for the same upload.
"""

from __future__ import annotations

import asyncio
import logging

from lepton.functions.client import LifecycleClient, start_lifecycle
from lepton.functions.orchestrator import LifecycleInput
from lepton.functions.services import Services, get_services
from lepton.shared.errors import InvalidInput
from lepton.shared.model_store import MODEL_FILE, parse_model_blob_path
from lepton.shared.storage import MODELS_CONTAINER

_log = logging.getLogger(__name__)


async def handle_model_blob(
    blob_name: str, client: LifecycleClient, services: Services | None = None
) -> str | None:
    """Start the lifecycle for a model upload; returns its instance id, None for other blobs."""
    path = blob_name.strip("/")
    if path.startswith(MODELS_CONTAINER + "/"):
        path = path[len(MODELS_CONTAINER) + 1 :]
    if not path.endswith("/" + MODEL_FILE):
        return None
    try:
        model, version = parse_model_blob_path(path)
    except InvalidInput as err:
        # A badly named upload cannot become a version; say why in the log and drop it.
        _log.warning("ignoring blob %r: %s", blob_name, err)
        return None
    store = (services or get_services()).store
    stored = await asyncio.to_thread(store.stat_model, model, version)
    started = await start_lifecycle(
        client, LifecycleInput(model, version, stored.sha256, {}, "blob-trigger")
    )
    return started.instance_id
