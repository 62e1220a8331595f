"""The ``lepton`` command: run the local stack, push models, follow and steer their lifecycles.

Talks to the local stack by default (API on 127.0.0.1:7071, worker on 127.0.0.1:8000, Azurite's
well-known connection string) and to Azure with ``--api-url``/``--key`` (or ``LEPTON_API_URL``,
``LEPTON_API_KEY``) and ``AzureWebJobsStorage``. Uploads go straight to blob storage, as in Azure:
the new ``models/`` blob is what starts the lifecycle. Every error says what to do next and exits
with status 1 (2 for bad usage).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, BinaryIO, cast

import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from lepton.dev.api_client import (
    DEFAULT_API_URL,
    DEFAULT_WORKER_URL,
    ApiConfig,
    ApiError,
    LeptonApi,
)
from lepton.dev.app import PROJECT_ROOT, functions_app
from lepton.dev.demo import run_demo_cli
from lepton.dev.logs import configure_logging
from lepton.dev.ports import check_ports_free
from lepton.dev.publish import (
    PublishError,
    load_dataset,
    load_manifest,
    parse_route_settings,
    v2_request,
)
from lepton.dev.settings import DevSettings, local_connection_string
from lepton.dev.stack import LocalStack
from lepton.dev.views import FINAL_STAGES, model_view, recent_stats, routes_text, step_text
from lepton.shared.errors import InvalidInput, LeptonError
from lepton.shared.manifest import Manifest
from lepton.shared.metrics import MetricsStore
from lepton.shared.model_store import BlobModelStore
from lepton.shared.names import parse_version, validate_model_name
from lepton.shared.settings import StorageSettings
from lepton.shared.storage import blob_service, table_service

app = typer.Typer(
    help="Lepton: run many versions of an ML model side by side; validate, evaluate, canary, "
    "promote or roll back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

ApiUrl = Annotated[
    str, typer.Option("--api-url", envvar="LEPTON_API_URL", help="Lepton HTTP API base URL.")
]
ApiKey = Annotated[
    str | None,
    typer.Option("--key", envvar="LEPTON_API_KEY", help="Function key (x-functions-key)."),
]
WorkerUrl = Annotated[
    str, typer.Option("--worker-url", envvar="LEPTON_WORKER_URL", help="Inference worker base URL.")
]
StorageConn = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="AzureWebJobsStorage",
        help="Storage connection string (default: the local stack's Azurite).",
    ),
]

FINAL_FOLLOW_STAGES = frozenset({"production", "rejected", "rolled_back", "superseded"})


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _api(api_url: str, key: str | None, worker_url: str = DEFAULT_WORKER_URL) -> LeptonApi:
    return LeptonApi(
        ApiConfig(api_url=api_url.rstrip("/"), key=key, worker_url=worker_url.rstrip("/"))
    )


def _storage(conn: str | None) -> Any:

    if conn:
        return StorageSettings(connection_string=conn)
    try:
        return StorageSettings.from_env()
    except LeptonError:
        return StorageSettings(connection_string=local_connection_string())


# -- dev ------------------------------------------------------------------------------------


@app.command()
def dev(
    *,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder (default .lepton).")] = None,
    api_port: Annotated[int | None, typer.Option(help="HTTP API port (7071).")] = None,
    worker_port: Annotated[int | None, typer.Option(help="Worker port (8000).")] = None,
    blob_port: Annotated[int | None, typer.Option(help="Azurite blob port (10000).")] = None,
    queue_port: Annotated[int | None, typer.Option(help="Azurite queue port (10001).")] = None,
    table_port: Annotated[int | None, typer.Option(help="Azurite table port (10002).")] = None,
    durable_port: Annotated[int | None, typer.Option(help="durabletask gRPC port (4001).")] = None,
    worker: Annotated[bool, typer.Option(help="Start the inference worker.")] = True,
) -> None:
    """Start the whole stack locally (Azurite, lifecycle, API, watcher, worker); Ctrl-C stops it."""

    try:
        settings = DevSettings.from_env().with_overrides(
            data_dir=data_dir,
            api_port=api_port,
            worker_port=worker_port,
            blob_port=blob_port,
            queue_port=queue_port,
            table_port=table_port,
            durable_port=durable_port,
            start_worker=worker,
        )
        check_ports_free(settings.ports())  # before anything starts or logs
    except LeptonError as err:
        raise _fail(str(err)) from None
    configure_logging(console=err_console)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack = _start_stack(settings)
        if stack is None:
            raise typer.Exit(1)
        _print_endpoints(stack.endpoints)
        console.print("[dim]Ctrl-C stops everything.[/]")
        stop.wait()
        console.print("stopping…")
        stack.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_stack(settings: Any) -> Any:

    try:
        return LocalStack(settings, functions_app()).start()
    except LeptonError as err:
        _fail(str(err))
        return None


def _print_endpoints(endpoints: Any) -> None:
    table = Table(title="Lepton local stack", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in endpoints.lines():
        if name != "AzureWebJobsStorage":
            table.add_row(name, value)
    console.print(table)
    # On one unwrapped line, to paste into another shell (the CLI and tools read this variable).
    console.print(
        f"export AzureWebJobsStorage='{endpoints.storage_connection}'",
        soft_wrap=True,
        highlight=False,
    )


# -- push -----------------------------------------------------------------------------------


class _ProgressReader:
    def __init__(self, raw: BinaryIO, progress: Progress, task: Any) -> None:
        self._raw, self._progress, self._task = raw, progress, task

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        self._progress.update(self._task, advance=len(chunk))
        return chunk

    def seekable(self) -> bool:
        return self._raw.seekable()

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._raw.seek(offset, whence)
        self._progress.update(self._task, completed=position)
        return position


@app.command()
def push(
    model: str,
    version: str,
    file: Annotated[Path, typer.Argument(help="The ONNX model file.")],
    *,
    manifest: Annotated[Path | None, typer.Option(help="lepton.json manifest.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name (datasets/<model>/<name>.npz).")
    ] = None,
    dataset_file: Annotated[Path | None, typer.Option(help=".npz with arrays X and y.")] = None,
    follow: Annotated[bool, typer.Option(help="Follow the lifecycle after the upload.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to follow at most.")] = 600.0,
    storage: StorageConn = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    key: ApiKey = None,
) -> None:
    """Upload a model version (and manifest/dataset); the upload starts its lifecycle."""

    try:
        validate_model_name(model)
        parse_version(version)
        if not file.is_file():
            raise InvalidInput(f"model file {file} does not exist; pass the path of a .onnx file")
        parsed = load_manifest(manifest) if manifest else None
        if (dataset is None) != (dataset_file is None):
            raise InvalidInput(
                "--dataset and --dataset-file go together: name the dataset and give its .npz file"
            )
        arrays = load_dataset(dataset_file) if dataset_file else None
        if dataset is not None:
            parsed = replace(parsed or Manifest(), dataset=dataset)
        store = BlobModelStore(blob_service(_storage(storage)))
        if dataset is not None and arrays is not None:
            path = store.put_dataset(model, dataset, *arrays)
            console.print(f"dataset uploaded to datasets/{path}")
        size = file.stat().st_size
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"uploading {model} {version}", total=size)
            with file.open("rb") as raw:
                # The store only calls read(n); the wrapper counts what it reads.
                reader = cast(BinaryIO, _ProgressReader(raw, progress, task))
                stored = store.upload_model(model, version, reader, parsed)
    except (LeptonError, PublishError) as err:
        raise _fail(str(err)) from None
    except Exception as err:
        raise _fail(_storage_hint(err)) from None
    console.print(f"stored models/{stored.path} (sha256 {stored.sha256[:12]}…, {stored.size} B)")
    if follow:
        with _api(api_url, key) as api:
            _follow(api, model, version, timeout)


def _storage_hint(err: Exception) -> str:
    return (
        f"storage is not reachable ({type(err).__name__}: {str(err)[:200]}): start the local "
        "stack with `make run`, or set AzureWebJobsStorage / --storage to your account"
    )


def _follow(api: LeptonApi, model: str, version: str, timeout: float) -> str:
    """Print each stage change of ``model version`` until a final stage; returns that stage."""
    deadline = time.monotonic() + timeout
    last = ""
    last_step = ""
    while time.monotonic() < deadline:
        try:
            detail = api.version(model, version)
        except ApiError as err:
            if err.status_code == 404:
                if last != "waiting":
                    console.print("waiting for the lifecycle to pick up the upload…")
                    last = "waiting"
                time.sleep(0.5)
                continue
            raise _fail(str(err)) from None
        record = detail["version"]
        stage = str(record["stage"])

        step = step_text(detail.get("lifecycle"))
        if stage != last:
            reason = f" — {record.get('reason')}" if record.get("reason") else ""
            console.print(
                f"{time.strftime('%H:%M:%S')} {model} {version}: [bold]{stage}[/]{reason}",
                highlight=False,
            )
            last = stage
        elif step and step != last_step:
            console.print(f"{time.strftime('%H:%M:%S')}   {step}", style="dim", highlight=False)
        last_step = step
        if stage in FINAL_FOLLOW_STAGES:
            return stage
        time.sleep(0.5)
    console.print(f"still {last} after {timeout:.0f} s; keep watching with `lepton watch {model}`")
    return last


# -- status / watch ---------------------------------------------------------------------------


def _lifecycles(api: LeptonApi, model: str, detail: dict[str, Any]) -> dict[str, Any]:

    out: dict[str, Any] = {}
    for v in detail.get("versions") or []:
        if v["stage"] not in FINAL_STAGES:
            try:
                out[v["version"]] = api.version(model, v["version"]).get("lifecycle")
            except ApiError:
                out[v["version"]] = None
    return out


def _metrics(storage: str | None) -> Any:

    try:
        return MetricsStore(table_service(_storage(storage)))
    except Exception:
        return None


@app.command()
def status(
    model: Annotated[str | None, typer.Argument()] = None,
    version: Annotated[str | None, typer.Argument()] = None,
    *,
    storage: StorageConn = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    key: ApiKey = None,
) -> None:
    """List models; show a model's versions and routes; or one version in detail."""

    with _api(api_url, key) as api:
        try:
            if model is None:
                models = api.models()
                if not models:
                    console.print("no models yet: push one with `lepton push MODEL VERSION FILE`")
                for name in models:
                    detail = api.model(name)
                    stages = ", ".join(f"{v['version']} {v['stage']}" for v in detail["versions"])
                    console.print(f"[bold]{name}[/]: {stages}", highlight=False)
                return
            if version is None:
                detail = api.model(model)
                stats = recent_stats(_metrics(storage), model)
                console.print(model_view(detail, _lifecycles(api, model, detail), stats))
                return
            console.print_json(json.dumps(api.version(model, version)))
        except ApiError as err:
            raise _fail(str(err)) from None


@app.command()
def watch(
    model: str,
    *,
    interval: Annotated[float, typer.Option(help="Refresh every N seconds.")] = 1.0,
    count: Annotated[int, typer.Option(help="Stop after N refreshes (0: until Ctrl-C).")] = 0,
    storage: StorageConn = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    key: ApiKey = None,
) -> None:
    """Live view of a model: stage, step, traffic split, error rate and p95 per version."""

    metrics = _metrics(storage)
    with _api(api_url, key) as api:

        def render() -> Any:
            detail = api.model(model)
            return model_view(detail, _lifecycles(api, model, detail), recent_stats(metrics, model))

        try:
            with Live(render(), console=console, refresh_per_second=4) as live:
                n = 1
                while count == 0 or n < count:
                    time.sleep(interval)
                    live.update(render())
                    n += 1
        except ApiError as err:
            raise _fail(str(err)) from None
        except KeyboardInterrupt:
            pass


# -- operator commands ------------------------------------------------------------------------


def _operate(
    action: str, model: str, version: str, *, reason: str, api_url: str, key: str | None
) -> None:
    with _api(api_url, key) as api:
        try:
            result = api.operate(model, version, action, reason)
        except ApiError as err:
            raise _fail(str(err)) from None
    console.print(f"{action} sent to {model} {version} (instance {result.get('instance_id')})")


Reason = Annotated[str, typer.Option(help="Why (recorded in the audit log).")]


def _operator_command(action: str, summary: str) -> None:
    """Register ``lepton <action> MODEL VERSION``: one durable external event to the lifecycle."""

    def command(
        model: str,
        version: str,
        reason: Reason = "",
        api_url: ApiUrl = DEFAULT_API_URL,
        key: ApiKey = None,
    ) -> None:
        _operate(action, model, version, reason=reason, api_url=api_url, key=key)

    command.__doc__ = summary
    app.command(name=action)(command)


for _action, _summary in (
    ("approve", "Approve a version waiting for approval (major versions)."),
    ("promote", "Promote a version in rollout to production now."),
    ("rollback", "Roll a version back: traffic off it, stage rolled_back."),
    ("abort", "Abort a version's lifecycle."),
):
    _operator_command(_action, _summary)


@app.command()
def routes(
    model: str,
    *,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="key=value, e.g. candidate_weight_bp=500 or shadow=null (repeatable)."
        ),
    ] = None,
    reason: Reason = "manual route change",
    api_url: ApiUrl = DEFAULT_API_URL,
    key: ApiKey = None,
) -> None:
    """Show a model's routes, or change them with --set key=value."""

    with _api(api_url, key) as api:
        try:
            if set_:
                changes = parse_route_settings(set_)
                changes["reason"] = reason
                changes["actor"] = "cli"
                result = api.set_routes(model, changes)
            else:
                result = api.model(model)["routes"]
        except (ApiError, InvalidInput) as err:
            raise _fail(str(err)) from None
    console.print(routes_text(result))


@app.command()
def history(
    model: str,
    version: Annotated[str | None, typer.Argument()] = None,
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    key: ApiKey = None,
) -> None:
    """The audit log of a model's versions (or of one version), oldest first."""
    with _api(api_url, key) as api:
        try:
            versions = (
                [version] if version else [v["version"] for v in api.model(model)["versions"]]
            )
            events = [e for v in versions for e in api.history(model, v)]
        except ApiError as err:
            raise _fail(str(err)) from None
    events.sort(key=lambda e: str(e.get("at")))
    table = Table(
        title=f"history of {model}" + (f" {version}" if version else ""), title_justify="left"
    )
    for column in ("at", "version", "kind", "from → to", "actor", "reason"):
        table.add_column(column, overflow="fold")
    for e in events:
        change = (
            f"{e.get('from') or ''} → {e.get('to') or ''}"
            if e.get("kind") != "routes"
            else "traffic"
        )
        table.add_row(
            str(e.get("at", ""))[11:19],
            str(e.get("version") or ""),
            str(e.get("kind")),
            change,
            str(e.get("actor")),
            str(e.get("reason")),
        )
    console.print(table)


@app.command()
def infer(
    model: str,
    *,
    data: Annotated[str, typer.Option(help="JSON: a list of rows, or a full v2 request.")],
    version: Annotated[str | None, typer.Option(help="Pin a version.")] = None,
    worker_url: WorkerUrl = DEFAULT_WORKER_URL,
) -> None:
    """Send an inference request to the worker (Open Inference Protocol)."""

    with _api(DEFAULT_API_URL, None, worker_url) as api:
        try:
            try:
                parsed = json.loads(data)
            except json.JSONDecodeError as err:
                raise InvalidInput(
                    f"--data is not JSON ({err.msg}); pass e.g. '[[0, 1, 2]]'"
                ) from None
            body = parsed if isinstance(parsed, dict) else v2_request(api, model, parsed)
            result = api.infer(model, body, version)
        except (ApiError, InvalidInput) as err:
            raise _fail(str(err)) from None
    console.print_json(json.dumps(result))


@app.command()
def bench(
    names: Annotated[
        list[str] | None,
        typer.Argument(help="Benchmarks to run: worker, canary, lifecycle, scale (default: all)."),
    ] = None,
    *,
    quick: Annotated[bool, typer.Option(help="Shorter runs (noisier figures).")] = False,
) -> None:
    """Run the benchmarks (`python -m bench`) and print their figures."""
    if not (PROJECT_ROOT / "bench" / "__main__.py").exists():
        raise _fail(
            "the benchmarks live in the source checkout (bench/); run `make bench` from a clone"
        )
    args = [*(names or []), *(["--quick"] if quick else [])]
    # From the checkout's root, so `bench` imports whatever directory the command was run in.
    raise typer.Exit(subprocess.call([sys.executable, "-m", "bench", *args], cwd=PROJECT_ROOT))


@app.command()
def demo(
    *,
    api_url: ApiUrl = DEFAULT_API_URL,
    storage: StorageConn = None,
    worker_url: WorkerUrl = DEFAULT_WORKER_URL,
    start_stack: Annotated[
        bool, typer.Option(help="Start a local stack if none answers at --api-url.")
    ] = True,
) -> None:
    """Push five digits models in turn under load and print the timeline of what happened."""

    raise typer.Exit(
        run_demo_cli(
            console,
            api_url=api_url,
            storage=storage,
            worker_url=worker_url,
            start_stack=start_stack,
        )
    )


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":
    main()
