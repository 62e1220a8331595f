"""A parsed, queryable view of the Bicep templates under ``infra/bicep`` for the infra tests.

The Bicep CLI cannot run here, so the tests read the templates with ``pycep`` (the parser checkov
itself uses) and ask questions of the tree: which resources exist, with which properties, which
settings an app gets. pycep renders an identifier and a string literal alike (``storage`` and
``'storage'`` both become ``"storage"``), so the checks compare against names the templates use
on purpose. The checks return lists of problems rather than asserting, so a test can also prove
that a broken template is caught.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO_ROOT = Path(__file__).resolve().parents[3]
BICEP_DIR = REPO_ROOT / "infra" / "bicep"
MAIN_TEMPLATE = "main.bicep"
DEV_PARAMETERS = BICEP_DIR / "main.dev.parameters.json"

# Built-in Azure role definition IDs (identical in every tenant).
ROLE_STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
ROLE_STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
ROLE_STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
ROLE_MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
ROLE_ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
# Roles far broader than any Lepton component needs; none may be assigned.
BROAD_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
    "81a9662b-bebf-436f-a333-f67b29880f12": "Storage Account Key Operator Service Role",
}


@dataclass(frozen=True)
class Resource:
    """One ``resource`` declaration: its symbolic name, type and body (loops unwrapped)."""

    symbol: str
    type: str
    existing: bool
    body: Mapping[str, Any]
    loop_over: str | None


@dataclass(frozen=True)
class Template:
    """One parsed ``.bicep`` file."""

    name: str  # path relative to infra/bicep, with forward slashes
    text: str
    tree: Mapping[str, Any]

    def section(self, kind: str) -> Mapping[str, Any]:
        value = self.tree.get(kind, {})
        assert isinstance(value, Mapping)
        return value

    @property
    def parameters(self) -> Mapping[str, Any]:
        return self.section("parameters")

    @property
    def variables(self) -> Mapping[str, Any]:
        return self.section("variables")

    @property
    def outputs(self) -> Mapping[str, Any]:
        return self.section("outputs")

    @property
    def modules(self) -> Mapping[str, Any]:
        return self.section("modules")

    def variable(self, name: str) -> Any:
        return self.variables[name]["value"]

    def resources(self, type_: str | None = None) -> list[Resource]:
        found = []
        for symbol, declaration in self.section("resources").items():
            if type_ is not None and declaration["type"] != type_:
                continue
            body, loop_over = unwrap(declaration["config"])
            found.append(
                Resource(
                    symbol, declaration["type"], bool(declaration["existing"]), body, loop_over
                )
            )
        return found

    def resource(self, type_: str) -> Resource:
        """The one resource of ``type_`` declared here (not counting ``existing`` references)."""
        declared = [r for r in self.resources(type_) if not r.existing]
        assert len(declared) == 1, f"{self.name}: expected one {type_}, found {len(declared)}"
        return declared[0]


def unwrap(config: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
    """The body of a resource or module, without its ``for`` loop or ``if`` condition wrapper."""
    if "loop_type" in config:
        return config["config"], config["loop_type"]["detail"]["array_name"]
    if set(config) == {"condition", "config"}:
        return config["config"], None
    return config, None


@functools.cache
def _parser() -> BicepParser:
    # Building the LALR tables takes most of a second; one parser serves every template.
    return BicepParser()


def parse_template(name: str, text: str) -> Template:
    """Parse one template; raise ``ValueError`` naming the file when pycep cannot parse it."""
    try:
        tree = _parser().parse(text=text)
    except Exception as err:  # lark raises a family of errors; all mean "cannot parse"
        raise ValueError(
            f"{name}: pycep cannot parse this template, so checkov would silently skip it: "
            f"{type(err).__name__}: {err}"
        ) from err
    return Template(name, text, tree)


def template_names() -> list[str]:
    return sorted(p.relative_to(BICEP_DIR).as_posix() for p in BICEP_DIR.rglob("*.bicep"))


@functools.cache
def load_template(name: str) -> Template:
    return parse_template(name, (BICEP_DIR / name).read_text(encoding="utf-8"))


def load_all() -> dict[str, Template]:
    return {name: load_template(name) for name in template_names()}


def with_edit(name: str, old: str, new: str, occurrences: int = 1) -> Template:
    """``name`` with the first ``old`` replaced by ``new``: for proving a check catches a defect.

    ``occurrences`` is how often ``old`` must appear, so a drifting template fails loudly instead
    of leaving the edit unapplied.
    """
    text = load_template(name).text
    found = text.count(old)
    assert found == occurrences, f"{name}: {old!r} occurs {found} times, expected {occurrences}"
    return parse_template(name, text.replace(old, new, 1))


def dev_parameters() -> dict[str, Any]:
    document = json.loads(DEV_PARAMETERS.read_text(encoding="utf-8"))
    return {name: entry["value"] for name, entry in document["parameters"].items()}


def walk(value: Any) -> Iterator[Any]:
    """Every node of a parsed value, depth first."""
    yield value
    if isinstance(value, Mapping):
        for child in value.values():
            yield from walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from walk(child)


def function_calls(value: Any, function_type: str) -> list[Mapping[str, Any]]:
    """The parameters of every call of ``function_type`` (pycep's name, e.g. ``concat``)."""
    return [
        node["function"]["parameters"]
        for node in walk(value)
        if isinstance(node, Mapping)
        and isinstance(node.get("function"), Mapping)
        and node["function"].get("type") == function_type
    ]


def name_value_pairs(items: Any) -> dict[str, Any]:
    """``[{name: ..., value: ...}]`` (app settings, container env) as a dict."""
    assert isinstance(items, list), f"expected a list of name/value pairs, got {items!r}"
    return {item["name"]: item.get("value") for item in items}


def decorator(declaration: Mapping[str, Any], kind: str) -> Any:
    for entry in declaration.get("decorators", []):
        if entry["type"] == kind:
            return entry["argument"]
    return None


def has_default(declaration: Mapping[str, Any]) -> bool:
    # pycep stores an absent default as None; no Lepton parameter defaults to null.
    return declaration.get("default") is not None
