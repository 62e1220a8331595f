"""Every durable orchestrator, activity and external-event name Lepton uses, in one place.

Both durable adapters (Azure Functions and the local durabletask worker) register functions under
these names and the orchestrator calls them by these names, so a rename happens here only.
"""

from __future__ import annotations

from typing import Final

LIFECYCLE_ORCHESTRATOR: Final = "lepton_lifecycle"

REGISTER_ACTIVITY: Final = "lepton_register"
VALIDATE_ACTIVITY: Final = "lepton_validate"
TRANSITION_ACTIVITY: Final = "lepton_transition"
EVALUATE_SHARD_ACTIVITY: Final = "lepton_evaluate_shard"
COMPARE_ACTIVITY: Final = "lepton_compare"
CHECK_SLOT_ACTIVITY: Final = "lepton_check_slot"
WARM_STATUS_ACTIVITY: Final = "lepton_warm_status"
SET_ROUTES_ACTIVITY: Final = "lepton_set_routes"
DECIDE_WINDOW_ACTIVITY: Final = "lepton_decide_window"
PROMOTE_ACTIVITY: Final = "lepton_promote"
ROLLBACK_ACTIVITY: Final = "lepton_rollback"
REINSTATE_ACTIVITY: Final = "lepton_reinstate"
REPORT_ACTIVITY: Final = "lepton_report"
RETIRE_ACTIVITY: Final = "lepton_retire"

ACTIVITY_NAMES: Final = (
    REGISTER_ACTIVITY,
    VALIDATE_ACTIVITY,
    TRANSITION_ACTIVITY,
    EVALUATE_SHARD_ACTIVITY,
    COMPARE_ACTIVITY,
    CHECK_SLOT_ACTIVITY,
    WARM_STATUS_ACTIVITY,
    SET_ROUTES_ACTIVITY,
    DECIDE_WINDOW_ACTIVITY,
    PROMOTE_ACTIVITY,
    ROLLBACK_ACTIVITY,
    REINSTATE_ACTIVITY,
    REPORT_ACTIVITY,
    RETIRE_ACTIVITY,
)

# One external event carries every operator command ({"action": ..., "actor": ..., "reason":
# ...}); a single waiter per orchestration means a command can never land on a stale waiter.
OPERATOR_EVENT: Final = "operator"
OPERATOR_ACTIONS: Final = ("approve", "promote", "rollback", "abort")
