"""The model registry over Azure Tables: versions, routes and the audit log.

Tables are partitioned by model name, so one model never contends with another and listing a model
is a single-partition query. Every write that changes state is conditional on the ETag it read, so
of two concurrent writers exactly one wins and the other gets :class:`ConcurrencyConflict` with
nothing written. A transition stores its own audit event on the version row in the same write and
then appends it to ``events`` under a deterministic key; if the process dies in between, the next
write or history read of that version re-appends it, so no event is ever lost or duplicated.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from lepton.shared.errors import (
    ConcurrencyConflict,
    InvalidRoutes,
    VersionConflict,
    VersionNotFound,
)
from lepton.shared.lifecycle import (
    CANDIDATE_SLOT_STAGES,
    PRODUCTION_SLOT_STAGES,
    SHADOW_SLOT_STAGES,
    Stage,
    check_transition,
)
from lepton.shared.names import SemVer, validate_model_name
from lepton.shared.records import BASIS_POINTS, AuditEvent, ModelVersion, Routes, Signature
from lepton.shared.storage import EVENTS_TABLE, ROUTES_TABLE, VERSIONS_TABLE

_ROUTES_ROW = "routes"
_HEADER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
# Metadata updates (not transitions) retry a lost ETag race this many times before giving up.
_ANNOTATE_ATTEMPTS = 5


class Registry(Protocol):
    """What the lifecycle, the HTTP API and the worker need from the registry."""

    def register_version(
        self,
        model: str,
        version: str,
        *,
        sha256: str,
        size: int,
        blob_path: str,
        actor: str = ...,
        signature: Signature | None = ...,
    ) -> ModelVersion: ...

    def get_version(self, model: str, version: str) -> ModelVersion: ...

    def list_versions(self, model: str) -> list[ModelVersion]: ...

    def list_models(self) -> list[str]: ...

    def transition(
        self,
        model: str,
        version: str,
        to: Stage,
        *,
        reason: str,
        actor: str,
        expected_from: Stage | None = ...,
        details: dict[str, Any] | None = ...,
    ) -> ModelVersion: ...

    def annotate(
        self,
        model: str,
        version: str,
        *,
        signature: Signature | None = ...,
        evaluation: dict[str, Any] | None = ...,
        instance_id: str | None = ...,
        policy_overrides: dict[str, Any] | None = ...,
    ) -> ModelVersion: ...

    def get_routes(self, model: str) -> Routes: ...

    def set_routes(self, routes: Routes, *, actor: str, reason: str) -> Routes: ...

    def history(self, model: str, version: str | None = ...) -> list[AuditEvent]: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _event_key(version_key: str, sequence: int) -> str:
    return f"v!{version_key}!{sequence:08d}"


def _routes_event_key(generation: int) -> str:
    return f"r!{generation:010d}"


def _event_to_entity(event: AuditEvent) -> dict[str, Any]:
    return {
        "Version": event.version or "",
        "Kind": event.kind,
        "Actor": event.actor,
        "From": event.from_value or "",
        "To": event.to_value or "",
        "Reason": event.reason,
        "At": event.at.isoformat(),
        "Details": json.dumps(event.details, sort_keys=True),
    }


def _event_from_entity(model: str, entity: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        model=model,
        version=entity.get("Version") or None,
        kind=entity["Kind"],
        actor=entity.get("Actor", ""),
        from_value=entity.get("From") or None,
        to_value=entity.get("To") or None,
        reason=entity.get("Reason", ""),
        at=datetime.fromisoformat(entity["At"]),
        details=json.loads(entity.get("Details") or "{}"),
    )


def _version_from_entity(entity: dict[str, Any]) -> ModelVersion:
    signature = entity.get("Signature")
    evaluation = entity.get("Evaluation")
    return ModelVersion(
        model=entity["PartitionKey"],
        version=entity["Version"],
        stage=Stage(entity["Stage"]),
        sha256=entity["Sha256"],
        size=int(entity["Size"]),
        blob_path=entity["BlobPath"],
        created=datetime.fromisoformat(entity["Created"]),
        updated=datetime.fromisoformat(entity["Updated"]),
        signature=Signature.from_json(json.loads(signature)) if signature else None,
        evaluation=json.loads(evaluation) if evaluation else None,
        instance_id=entity.get("InstanceId") or None,
        reason=entity.get("Reason", ""),
        sequence=int(entity.get("Sequence", 0)),
        policy_overrides=json.loads(entity.get("PolicyOverrides") or "{}"),
        etag=entity.metadata["etag"] if hasattr(entity, "metadata") else "",
    )


def _routes_from_entity(entity: dict[str, Any]) -> Routes:
    return Routes(
        model=entity["PartitionKey"],
        production=entity.get("Production") or None,
        candidate=entity.get("Candidate") or None,
        candidate_weight_bp=int(entity.get("CandidateWeightBp", 0)),
        shadow=entity.get("Shadow") or None,
        shadow_fraction_bp=int(entity.get("ShadowFractionBp", 0)),
        sticky_header=entity.get("StickyHeader") or None,
        generation=int(entity.get("Generation", 0)),
        etag=entity.metadata["etag"] if hasattr(entity, "metadata") else "",
    )


class TableRegistry:
    """:class:`Registry` over Azure Table storage (or Azurite)."""

    def __init__(self, tables: TableServiceClient) -> None:
        self._versions: TableClient = tables.get_table_client(VERSIONS_TABLE)
        self._routes: TableClient = tables.get_table_client(ROUTES_TABLE)
        self._events: TableClient = tables.get_table_client(EVENTS_TABLE)

    # -- versions -----------------------------------------------------------------------------

    def register_version(
        self,
        model: str,
        version: str,
        *,
        sha256: str,
        size: int,
        blob_path: str,
        actor: str = "lepton",
        signature: Signature | None = None,
    ) -> ModelVersion:
        """Record a new version in stage ``registered``; idempotent for the same content."""
        validate_model_name(model)
        semver = SemVer.parse(version)
        now = _now()
        event = AuditEvent(
            model,
            version,
            "registered",
            actor,
            None,
            Stage.REGISTERED.value,
            f"registered sha256 {sha256[:12]}",
            now,
            {"sha256": sha256, "size": size},
        )
        entity = {
            "PartitionKey": model,
            "RowKey": semver.sort_key,
            "Version": version,
            "Stage": Stage.REGISTERED.value,
            "Sha256": sha256,
            "Size": size,
            "BlobPath": blob_path,
            "Created": now.isoformat(),
            "Updated": now.isoformat(),
            "Signature": json.dumps(signature.to_json()) if signature else "",
            "Reason": "",
            "Sequence": 0,
            "LastEvent": json.dumps(_event_to_entity(event)),
        }
        try:
            self._versions.create_entity(entity)
        except ResourceExistsError:
            existing = self.get_version_by_key(model, semver)
            if existing.version != version:
                raise VersionConflict(
                    f"{model} {version} has the same SemVer precedence as the registered "
                    f"{existing.version} (build metadata does not distinguish versions); "
                    "bump the version instead"
                ) from None
            if existing.sha256 != sha256:
                raise VersionConflict(
                    f"{model} {version} is already registered with different content "
                    f"(sha256 {existing.sha256[:12]}…, this upload {sha256[:12]}…); versions are "
                    "immutable: publish the change as a new version"
                ) from None
            return existing
        self._append_event(model, _event_key(semver.sort_key, 0), event)
        return self.get_version(model, version)

    def get_version_by_key(self, model: str, semver: SemVer) -> ModelVersion:
        try:
            entity = self._versions.get_entity(model, semver.sort_key)
        except ResourceNotFoundError:
            raise VersionNotFound(
                f"model {model!r} has no version {semver}; list versions with "
                f"`lepton status {model}`"
            ) from None
        return _version_from_entity(entity)

    def get_version(self, model: str, version: str) -> ModelVersion:
        validate_model_name(model)
        record = self.get_version_by_key(model, SemVer.parse(version))
        if record.version != version and SemVer.parse(version).build:
            raise VersionNotFound(f"model {model!r} has {record.version}, not {version}")
        return record

    def list_versions(self, model: str) -> list[ModelVersion]:
        """Every version of ``model``, lowest SemVer first (RowKeys sort by precedence)."""
        validate_model_name(model)
        rows = self._versions.query_entities("PartitionKey eq @pk", parameters={"pk": model})
        return sorted((_version_from_entity(e) for e in rows), key=lambda v: v.semver)

    def list_models(self) -> list[str]:
        rows = self._versions.list_entities(select=["PartitionKey"])
        return sorted({e["PartitionKey"] for e in rows})

    def transition(
        self,
        model: str,
        version: str,
        to: Stage,
        *,
        reason: str,
        actor: str,
        expected_from: Stage | None = None,
        details: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Move a version to stage ``to`` and audit it; exactly one of concurrent movers wins.

        ``expected_from`` makes the call idempotent for retried activities: if the version is
        already in ``to`` and its last transition came from ``expected_from``, the stored record
        is returned unchanged; if it is in any other stage than ``expected_from`` the move is a
        conflict (someone else moved it first).
        """
        current = self.get_version(model, version)
        self._repair_last_event(current)
        if expected_from is not None and current.stage != expected_from:
            if current.stage == to and self._last_transition_from(current) == expected_from:
                return current
            raise ConcurrencyConflict(
                f"{model} {version} is in stage {current.stage.value!r}, not "
                f"{expected_from.value!r}: another actor moved it first; reload and retry"
            )
        check_transition(current.stage, to)
        now = _now()
        sequence = current.sequence + 1
        event = AuditEvent(
            model,
            version,
            "transition",
            actor,
            current.stage.value,
            to.value,
            reason,
            now,
            details or {},
        )
        patch = {
            "PartitionKey": model,
            "RowKey": current.semver.sort_key,
            "Stage": to.value,
            "Reason": reason,
            "Updated": now.isoformat(),
            "Sequence": sequence,
            "LastEvent": json.dumps(_event_to_entity(event)),
        }
        self._conditional_merge(current, patch)
        self._append_event(model, _event_key(current.semver.sort_key, sequence), event)
        return self.get_version(model, version)

    def annotate(
        self,
        model: str,
        version: str,
        *,
        signature: Signature | None = None,
        evaluation: dict[str, Any] | None = None,
        instance_id: str | None = None,
        policy_overrides: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Attach metadata (signature, evaluation summary, orchestration id and the policy
        overrides of its run) to a version; ``{}`` overrides clear those of an earlier run."""
        patch: dict[str, Any] = {}
        if signature is not None:
            patch["Signature"] = json.dumps(signature.to_json())
        if evaluation is not None:
            patch["Evaluation"] = json.dumps(evaluation, sort_keys=True)
        if instance_id is not None:
            patch["InstanceId"] = instance_id
        if policy_overrides is not None:
            patch["PolicyOverrides"] = json.dumps(policy_overrides, sort_keys=True)
        for _ in range(_ANNOTATE_ATTEMPTS):
            current = self.get_version(model, version)
            if not patch:
                return current
            full = {"PartitionKey": model, "RowKey": current.semver.sort_key, **patch}
            try:
                self._conditional_merge(current, full)
            except ConcurrencyConflict:
                continue  # a transition landed in between; metadata merges are order-free
            return self.get_version(model, version)
        raise ConcurrencyConflict(
            f"{model} {version} kept changing while annotating it; retry later"
        )

    def _conditional_merge(self, current: ModelVersion, patch: dict[str, Any]) -> None:
        try:
            self._versions.update_entity(
                patch,
                mode=UpdateMode.MERGE,
                etag=current.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError as err:
            if err.status_code == 412:
                raise ConcurrencyConflict(
                    f"{current.model} {current.version} was changed by another actor while this "
                    "change was being made; nothing was written: reload and retry"
                ) from None
            raise

    def _last_transition_from(self, record: ModelVersion) -> Stage | None:
        entity = self._versions.get_entity(record.model, record.semver.sort_key)
        last = json.loads(entity.get("LastEvent") or "{}")
        return Stage(last["From"]) if last.get("From") else None

    def _repair_last_event(self, record: ModelVersion) -> None:
        """Re-append the version's last audit event if a crash lost it (idempotent upsert)."""
        entity = self._versions.get_entity(record.model, record.semver.sort_key)
        raw = entity.get("LastEvent")
        if raw:
            key = _event_key(record.semver.sort_key, record.sequence)
            with contextlib.suppress(ResourceExistsError):
                self._events.create_entity(
                    {"PartitionKey": record.model, "RowKey": key, **json.loads(raw)}
                )

    # -- routes -------------------------------------------------------------------------------

    def get_routes(self, model: str) -> Routes:
        validate_model_name(model)
        try:
            return _routes_from_entity(self._routes.get_entity(model, _ROUTES_ROW))
        except ResourceNotFoundError:
            return Routes(model=model)

    def set_routes(self, routes: Routes, *, actor: str, reason: str) -> Routes:
        """Replace a model's routes after validation; conditional on ``routes.etag`` if set.

        Pass the ``Routes`` you read (with its etag) to make the write conditional; a route
        written by someone else in between raises :class:`ConcurrencyConflict`.
        """
        validate_model_name(routes.model)
        self._validate_routes(routes)
        previous = self.get_routes(routes.model)
        generation = previous.generation + 1
        entity = {
            "PartitionKey": routes.model,
            "RowKey": _ROUTES_ROW,
            "Production": routes.production or "",
            "Candidate": routes.candidate or "",
            "CandidateWeightBp": routes.candidate_weight_bp,
            "Shadow": routes.shadow or "",
            "ShadowFractionBp": routes.shadow_fraction_bp,
            "StickyHeader": routes.sticky_header or "",
            "Generation": generation,
        }
        expected_etag = routes.etag or previous.etag
        try:
            if expected_etag:
                self._routes.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=expected_etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            else:
                self._routes.create_entity(entity)
        except (ResourceExistsError, HttpResponseError) as err:
            if isinstance(err, ResourceExistsError) or err.status_code == 412:
                raise ConcurrencyConflict(
                    f"routes of {routes.model!r} were changed by another actor; nothing was "
                    "written: reload the routes and retry"
                ) from None
            raise
        stored = self.get_routes(routes.model)
        event = AuditEvent(
            routes.model,
            routes.candidate,
            "routes",
            actor,
            json.dumps(previous.to_json(), sort_keys=True),
            json.dumps(stored.to_json(), sort_keys=True),
            reason,
            _now(),
        )
        self._append_event(routes.model, _routes_event_key(generation), event)
        return stored

    def _validate_routes(self, routes: Routes) -> None:
        problems: list[str] = []
        for name, value in (
            ("candidate_weight_bp", routes.candidate_weight_bp),
            ("shadow_fraction_bp", routes.shadow_fraction_bp),
        ):
            if not 0 <= value <= BASIS_POINTS:
                problems.append(
                    f"{name} must be within 0..{BASIS_POINTS} basis points, got {value}"
                )
        if routes.candidate_weight_bp and not routes.candidate:
            problems.append("candidate_weight_bp > 0 needs a candidate version")
        if routes.shadow_fraction_bp and not routes.shadow:
            problems.append("shadow_fraction_bp > 0 needs a shadow version")
        if routes.candidate and routes.candidate == routes.production:
            problems.append("candidate and production must be different versions")
        if routes.candidate and not routes.production and routes.candidate_weight_bp < BASIS_POINTS:
            problems.append("without a production version the candidate must take all traffic")
        if routes.sticky_header and not _HEADER_RE.match(routes.sticky_header):
            problems.append(f"sticky_header {routes.sticky_header!r} is not a valid header name")
        if problems:
            raise InvalidRoutes(f"invalid routes for {routes.model!r}: " + "; ".join(problems))
        slots = (
            ("production", routes.production, PRODUCTION_SLOT_STAGES),
            ("candidate", routes.candidate, CANDIDATE_SLOT_STAGES),
            ("shadow", routes.shadow, SHADOW_SLOT_STAGES),
        )
        for slot, version, stages in slots:
            if version is None:
                continue
            try:
                record = self.get_version(routes.model, version)
            except VersionNotFound:
                raise InvalidRoutes(
                    f"invalid routes for {routes.model!r}: {slot} version {version} is not "
                    "registered"
                ) from None
            if record.stage not in stages:
                allowed = ", ".join(sorted(s.value for s in stages))
                raise InvalidRoutes(
                    f"invalid routes for {routes.model!r}: {slot} version {version} is in stage "
                    f"{record.stage.value!r}; the {slot} slot takes versions in: {allowed}"
                )

    # -- audit log ----------------------------------------------------------------------------

    def _append_event(self, model: str, row_key: str, event: AuditEvent) -> None:
        # Already appended (a retry or a repair): the log stays duplicate-free.
        with contextlib.suppress(ResourceExistsError):
            self._events.create_entity(
                {"PartitionKey": model, "RowKey": row_key, **_event_to_entity(event)}
            )

    def history(self, model: str, version: str | None = None) -> list[AuditEvent]:
        """The audit log of a model (or one version), oldest first."""
        validate_model_name(model)
        if version is None:
            for record in self.list_versions(model):
                self._repair_last_event(record)
            rows: Iterable[Any] = self._events.query_entities(
                "PartitionKey eq @pk", parameters={"pk": model}
            )
        else:
            record = self.get_version(model, version)
            self._repair_last_event(record)
            low = f"v!{record.semver.sort_key}!"
            rows = self._events.query_entities(
                "PartitionKey eq @pk and RowKey gt @lo and RowKey lt @hi",
                parameters={"pk": model, "lo": low, "hi": low + "~"},
            )
        events = [_event_from_entity(model, e) for e in rows]
        return sorted(events, key=lambda e: e.at)
