"""Lifecycle wall time: upload → promotion on the real local stack with the compressed policy.

Starts a private local stack (its own Azurite on free ports, the lifecycle, the host, the watcher,
the worker subprocess), promotes a first digits model, puts live load on the worker, then uploads a
better model and measures the wall time until it is production. The time is split with the audit
trail into phases, and the total into waiting by design (the policy's windows: one per window the
canary judged, from its report) versus overhead (blob event delivery, validation, evaluation,
warm-up, activity and storage round trips, metric flush lag).

Run: ``.venv/bin/python -m bench.lifecycle_bench [--window-s 3] [--rps 80]``.
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from lepton.dev import sample_models
from lepton.dev.api_client import ApiConfig, LeptonApi
from lepton.dev.app import PROJECT_ROOT, functions_app
from lepton.dev.azurite import Azurite, free_port
from lepton.dev.demo import DATASET, demo_policy, wait_final, wait_servable
from lepton.dev.loadgen import LoadGenerator
from lepton.dev.logs import configure_logging
from lepton.dev.settings import DevSettings
from lepton.dev.stack import LocalStack
from lepton.shared.errors import BlobNotFound
from lepton.shared.manifest import Manifest
from lepton.shared.model_store import BlobModelStore
from lepton.shared.registry import TableRegistry
from lepton.shared.settings import StorageSettings
from lepton.shared.storage import blob_service, table_service

MODEL = "bench-digits"


def _at(registry: TableRegistry, version: str, to_stage: str) -> datetime:
    for event in registry.history(MODEL, version):
        if event.to_value == to_stage:
            return event.at
    raise LookupError(f"{MODEL} {version} never reached {to_stage}")


def _canary_report(store: BlobModelStore) -> dict[str, Any]:
    # The lifecycle writes the report right after the promotion it describes.
    deadline = time.monotonic() + 30
    while True:
        try:
            return store.get_report(MODEL, "1.1.0", "canary")
        except BlobNotFound:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-s", type=float, default=3.0, help="canary window (s)")
    parser.add_argument("--rps", type=float, default=80.0, help="load on the worker")
    args = parser.parse_args(argv)
    policy = demo_policy(window_s=args.window_s)
    configure_logging(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, Azurite(Path(tmp) / "azurite", PROJECT_ROOT) as az:
        settings = DevSettings(
            data_dir=Path(tmp) / "lepton",
            api_port=free_port(),
            worker_port=free_port(),
            durable_port=free_port(),
            storage_connection=az.connection_string,
            worker_window_s=1,
            worker_poll_interval_s=0.3,
        )
        storage = StorageSettings(connection_string=az.connection_string)
        store = BlobModelStore(blob_service(storage))
        registry = TableRegistry(table_service(storage))
        train, test = sample_models.digits()
        stack = LocalStack(settings, functions_app()).start()
        api = LeptonApi(ApiConfig(api_url=settings.api_url, worker_url=settings.worker_url))
        try:
            store.put_dataset(MODEL, DATASET, test.x, test.y)
            manifest = Manifest(dataset=DATASET, policy=policy)
            store.upload_model(
                MODEL, "1.0.0", io.BytesIO(sample_models.linear_digits(train)), manifest
            )
            wait_final(api, MODEL, "1.0.0", 120)
            wait_servable(api, MODEL, test.x[:1], 60)
            load = LoadGenerator(
                settings.worker_url,
                MODEL,
                test.x,
                sample_models.FEATURE_MAX,
                unseen_fraction=0.0,
                rps=args.rps,
            ).start()
            try:
                started = time.time()
                store.upload_model(
                    MODEL, "1.1.0", io.BytesIO(sample_models.better_digits(train)), manifest
                )
                uploaded = time.time()
                detail = wait_final(api, MODEL, "1.1.0", 300)
                promoted_seen = time.time()
            finally:
                summary = load.stop()
            if detail["version"]["stage"] != "production":
                print(f"1.1.0 ended {detail['version']['stage']}: {detail['version']['reason']}")
                return 1
            report = _canary_report(store)
            registered = _at(registry, "1.1.0", "registered").timestamp()
            canary = _at(registry, "1.1.0", "canary").timestamp()
            production = _at(registry, "1.1.0", "production").timestamp()
        finally:
            api.close()
            stack.stop()

    # Each window is judged at every check interval inside it (the last look closes it); a
    # promoted version's steps ran every window to its end, so looks / looks-per-window = windows.
    looks_per_window = math.ceil(args.window_s / float(policy["check_interval_s"]))
    windows = len(report.get("steps") or []) // looks_per_window
    designed = windows * args.window_s
    total = production - started
    canary_s = production - canary
    overhead = total - designed
    print(
        f"lifecycle: upload → production, window {args.window_s:g} s, steps "
        f"{policy['steps_bp']} bp, load {args.rps:g} req/s ({summary.sent} requests, "
        f"{summary.failed} failed)"
    )
    rows = [
        ("upload (client)", uploaded - started),
        ("blob event → registered", registered - uploaded),
        ("validate + evaluate", canary - registered),
        ("canary (all steps)", canary_s),
        ("promotion seen by the client", promoted_seen - production),
    ]
    for name, seconds in rows:
        print(f"  {name:<30} {seconds:7.2f} s")
    print(f"  {'total upload → production':<30} {total:7.2f} s")
    print(
        f"waiting by design: {designed:.1f} s ({windows} canary windows x {args.window_s:g} s) "
        f"= {designed / total:.0%} of the total"
    )
    print(
        f"overhead: {overhead:.1f} s = {overhead / total:.0%} (of which in canary "
        f"{canary_s - designed:.1f} s: warm-up, activities, metric flush lag)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
