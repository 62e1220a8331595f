"""The lifecycle state machine: every move is checked, terminal stages stay terminal."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lepton.shared.errors import IllegalTransition, InvalidInput
from lepton.shared.lifecycle import (
    ACTIVE_STAGES,
    TERMINAL_STAGES,
    TRANSITIONS,
    Stage,
    check_transition,
    is_terminal,
)


def test_every_stage_has_a_transition_row() -> None:
    assert set(TRANSITIONS) == set(Stage)
    for targets in TRANSITIONS.values():
        assert targets <= set(Stage)


def test_happy_path_and_failure_paths_are_allowed() -> None:
    path = [
        Stage.REGISTERED,
        Stage.VALIDATING,
        Stage.EVALUATING,
        Stage.SHADOW,
        Stage.CANARY,
        Stage.PRODUCTION,
        Stage.SUPERSEDED,
    ]
    for current, target in itertools.pairwise(path):
        assert check_transition(current, target) is target
    assert check_transition(Stage.VALIDATING, Stage.REJECTED) is Stage.REJECTED
    assert check_transition(Stage.CANARY, Stage.ROLLED_BACK) is Stage.ROLLED_BACK
    assert check_transition(Stage.SUPERSEDED, Stage.PRODUCTION) is Stage.PRODUCTION


def test_a_version_stopped_before_traffic_is_rejected_not_rolled_back() -> None:
    # DESIGN §3: rejected ends validation/evaluation, rolled_back ends shadow/canary. A version
    # aborted or left unapproved in evaluating never took traffic, so it has nothing to roll
    # back; the orchestrator rejects it and the state machine keeps refusing the other edge.
    assert check_transition(Stage.EVALUATING, Stage.REJECTED) is Stage.REJECTED
    with pytest.raises(IllegalTransition, match="from 'evaluating' to 'rolled_back'"):
        check_transition(Stage.EVALUATING, Stage.ROLLED_BACK)
    assert check_transition(Stage.SHADOW, Stage.ROLLED_BACK) is Stage.ROLLED_BACK


def test_illegal_transition_names_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition, match="allowed from 'registered': rejected, validating"):
        check_transition(Stage.REGISTERED, Stage.PRODUCTION)
    with pytest.raises(IllegalTransition, match=r"none \(terminal\)"):
        check_transition(Stage.ROLLED_BACK, Stage.CANARY)


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown stage 'live'"):
        Stage.parse("live")
    assert Stage.parse("canary") is Stage.CANARY


def test_terminal_and_active_stages_are_disjoint() -> None:
    assert not TERMINAL_STAGES & ACTIVE_STAGES
    assert all(is_terminal(s) for s in TERMINAL_STAGES)


@given(st.lists(st.sampled_from(list(Stage)), max_size=40))
def test_no_sequence_reaches_an_undefined_state(attempts: list[Stage]) -> None:
    stage = Stage.REGISTERED
    reached_terminal: Stage | None = None
    for target in attempts:
        try:
            stage = check_transition(stage, target)
        except IllegalTransition:
            assert target not in TRANSITIONS[stage]
        else:
            assert stage in Stage
        if reached_terminal is not None:
            assert stage is reached_terminal, "a terminal stage was left"
        if is_terminal(stage):
            reached_terminal = stage
