"""The version lifecycle as one state machine (DESIGN.md §3).

``registered → validating → evaluating → [shadow] → canary → production → superseded``; failures
end in ``rejected`` (validation/evaluation) or ``rolled_back`` (shadow/canary/after promotion).
Every stage change anywhere in Lepton goes through :func:`check_transition`, so an illegal move is
an error, never a silent overwrite. ``rejected`` and ``rolled_back`` are terminal; ``superseded``
is not, because a rollback after promotion reinstates the previous production version.

``rolled_back`` means "traffic was taken off it", so only stages that carry traffic lead there. A
version stopped before it took any (an operator abort, or an approval that never came, while it
waits in ``evaluating``) ends ``rejected`` with the reason: there is deliberately no
``evaluating → rolled_back`` edge.
"""

from __future__ import annotations

from enum import StrEnum

from lepton.shared.errors import IllegalTransition, InvalidInput


class Stage(StrEnum):
    REGISTERED = "registered"
    VALIDATING = "validating"
    EVALUATING = "evaluating"
    SHADOW = "shadow"
    CANARY = "canary"
    PRODUCTION = "production"
    SUPERSEDED = "superseded"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"

    @classmethod
    def parse(cls, text: str) -> Stage:
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise InvalidInput(f"unknown stage {text!r}: expected one of {allowed}") from None


TERMINAL_STAGES: frozenset[Stage] = frozenset({Stage.REJECTED, Stage.ROLLED_BACK})

# Stages in which a lifecycle orchestration is still running; the reconciler resumes these.
ACTIVE_STAGES: frozenset[Stage] = frozenset(
    {Stage.REGISTERED, Stage.VALIDATING, Stage.EVALUATING, Stage.SHADOW, Stage.CANARY}
)

TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.REGISTERED: frozenset({Stage.VALIDATING, Stage.REJECTED}),
    Stage.VALIDATING: frozenset({Stage.EVALUATING, Stage.REJECTED}),
    # evaluating → production: the first version of a model has nothing to canary against.
    Stage.EVALUATING: frozenset({Stage.SHADOW, Stage.CANARY, Stage.PRODUCTION, Stage.REJECTED}),
    # shadow → production: an operator may promote straight from a shadow_only run.
    Stage.SHADOW: frozenset({Stage.CANARY, Stage.PRODUCTION, Stage.ROLLED_BACK}),
    Stage.CANARY: frozenset({Stage.PRODUCTION, Stage.ROLLED_BACK}),
    Stage.PRODUCTION: frozenset({Stage.SUPERSEDED, Stage.ROLLED_BACK}),
    # superseded → production: rollback after a promotion reinstates the previous version.
    Stage.SUPERSEDED: frozenset({Stage.PRODUCTION}),
    Stage.REJECTED: frozenset(),
    Stage.ROLLED_BACK: frozenset(),
}

# Which route slot a version in a given stage may occupy (DESIGN.md §2 `routes`).
PRODUCTION_SLOT_STAGES: frozenset[Stage] = frozenset({Stage.PRODUCTION})
CANDIDATE_SLOT_STAGES: frozenset[Stage] = frozenset({Stage.CANARY, Stage.PRODUCTION})
SHADOW_SLOT_STAGES: frozenset[Stage] = frozenset({Stage.SHADOW, Stage.CANARY})


def is_terminal(stage: Stage) -> bool:
    return stage in TERMINAL_STAGES


def allowed_next(stage: Stage) -> frozenset[Stage]:
    return TRANSITIONS[stage]


def check_transition(current: Stage, target: Stage) -> Stage:
    """Return ``target`` if ``current → target`` is allowed.

    Raises :class:`IllegalTransition` otherwise: a transition is never silently overwritten.
    """
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (terminal)"
        raise IllegalTransition(
            f"cannot move a version from {current.value!r} to {target.value!r}; "
            f"allowed from {current.value!r}: {allowed}"
        )
    return target
