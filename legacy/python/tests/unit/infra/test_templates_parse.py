"""Every Bicep template parses, and main.bicep wires its modules and parameters consistently.

checkov silently skips a file its parser (pycep) cannot read, so a parse failure here is the only
signal that a template has gone unchecked. With no Bicep CLI, the module and parameter checks
stand in for the compiler's: a module called with an undeclared parameter, or without a required
one, fails here instead of at deployment time.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.unit.infra._bicep import (
    BICEP_DIR,
    MAIN_TEMPLATE,
    Template,
    decorator,
    dev_parameters,
    has_default,
    load_all,
    load_template,
    parse_template,
    template_names,
    unwrap,
    with_edit,
)

EXPECTED_TEMPLATES = {
    "main.bicep",
    "modules/containerEnvironment.bicep",
    "modules/functionApp.bicep",
    "modules/identity.bicep",
    "modules/monitoring.bicep",
    "modules/registry.bicep",
    "modules/roles.bicep",
    "modules/storage.bicep",
    "modules/workerApp.bicep",
}


def module_call_problems(main: Template) -> list[str]:
    """Mismatches between each module call in ``main`` and the module's declared parameters."""
    problems = []
    for symbol, declaration in main.modules.items():
        path = declaration["detail"]["path"]
        if not (BICEP_DIR / path).is_file():
            problems.append(f"module {symbol}: {path} does not exist")
            continue
        declared = load_template(path).parameters
        body, _ = unwrap(declaration["config"])
        passed = set(body.get("params", {}))
        for name in sorted(passed - set(declared)):
            problems.append(f"module {symbol}: passes {name!r}, which {path} does not declare")
        for name, parameter in declared.items():
            if not has_default(parameter) and name not in passed:
                problems.append(
                    f"module {symbol}: does not pass required {path} parameter {name!r}"
                )
    return problems


def unused_declarations(template: Template) -> list[str]:
    """Parameters and variables never referenced (the Bicep linter's no-unused-* rules)."""
    unused = []
    for kind in ("parameters", "variables"):
        for name in template.section(kind):
            # A reference is the bare name, not a property of something else (x.name).
            uses = re.findall(rf"(?<![\w.]){re.escape(name)}\b", template.text)
            if len(uses) < 2:  # the declaration itself is one
                unused.append(f"{template.name}: {kind[:-1]} {name!r} is never used")
    return unused


def parameter_file_problems(main: Template, values: dict[str, Any]) -> list[str]:
    problems = []
    for name, value in values.items():
        parameter = main.parameters.get(name)
        if parameter is None:
            problems.append(f"{name!r} is not a parameter of main.bicep")
            continue
        allowed = decorator(parameter, "allowed")
        if allowed is not None and value not in allowed:
            problems.append(f"{name}={value!r} is not one of {allowed}")
        lowest, highest = decorator(parameter, "min_value"), decorator(parameter, "max_value")
        if lowest is not None and value < int(lowest):
            problems.append(f"{name}={value} is below its minimum {lowest}")
        if highest is not None and value > int(highest):
            problems.append(f"{name}={value} is above its maximum {highest}")
    for name, parameter in main.parameters.items():
        if not has_default(parameter) and name not in values:
            problems.append(f"required parameter {name!r} has no value")
    return problems


@pytest.mark.parametrize("name", template_names())
def test_template_parses_with_pycep(name: str) -> None:
    template = load_template(name)
    assert template.parameters or template.section("resources"), f"{name} parsed empty"


def test_the_expected_templates_are_all_there() -> None:
    assert set(template_names()) == EXPECTED_TEMPLATES


def test_an_unparseable_template_is_an_error_naming_the_file() -> None:
    broken = load_template(MAIN_TEMPLATE).text.replace("param location string", "param location")
    with pytest.raises(ValueError, match=r"main\.bicep: pycep cannot parse"):
        parse_template(MAIN_TEMPLATE, broken)


def test_main_uses_every_module_exactly_once() -> None:
    main = load_template(MAIN_TEMPLATE)
    used = sorted(d["detail"]["path"] for d in main.modules.values())
    modules = sorted(name for name in load_all() if name.startswith("modules/"))
    assert used == modules


def test_module_calls_match_module_parameters() -> None:
    assert module_call_problems(load_template(MAIN_TEMPLATE)) == []


def test_a_module_call_missing_a_required_parameter_is_caught() -> None:
    main = with_edit(MAIN_TEMPLATE, "    identityClientId: identity.outputs.clientId\n", "", 2)
    assert module_call_problems(main) == [
        "module functionApp: does not pass required modules/functionApp.bicep parameter "
        "'identityClientId'"
    ]


@pytest.mark.parametrize("name", template_names())
def test_no_unused_parameters_or_variables(name: str) -> None:
    assert unused_declarations(load_template(name)) == []


def test_an_unused_parameter_is_caught() -> None:
    template = with_edit("modules/identity.bicep", "  tags: tags\n", "")
    assert unused_declarations(template) == [
        "modules/identity.bicep: parameter 'tags' is never used"
    ]


def test_dev_parameters_fit_main() -> None:
    assert parameter_file_problems(load_template(MAIN_TEMPLATE), dev_parameters()) == []


def test_bad_dev_parameters_are_caught() -> None:
    values = dev_parameters() | {"gpuProfileType": "Consumption-GPU-H100", "workerMaxReplicas": 0}
    del values["environmentName"]
    assert parameter_file_problems(load_template(MAIN_TEMPLATE), values) == [
        "gpuProfileType='Consumption-GPU-H100' is not one of "
        "['Consumption-GPU-NC8as-T4', 'Consumption-GPU-NC24-A100']",
        "workerMaxReplicas=0 is below its minimum 1",
        "required parameter 'environmentName' has no value",
    ]
