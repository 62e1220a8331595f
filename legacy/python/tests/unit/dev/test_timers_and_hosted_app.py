"""The local host's timer runner, and the hosted app carrying the Functions app's timers and
telemetry setup (no storage needed)."""

from __future__ import annotations

import threading

import pytest

from lepton.dev.app import LOCAL_TIMER_INTERVAL_S, functions_app, timer_trigger_names
from lepton.dev.host import TimerRunner, TimerSpec
from lepton.functions.retention import METRICS_RETENTION_TIMER
from lepton.functions.services import configure_app_telemetry


class Counter:
    """Counts runs; ``reached`` is set once ``target`` runs have happened."""

    def __init__(self, target: int, fail: bool = False) -> None:
        self.runs: list[object] = []
        self.target = target
        self.fail = fail
        self.reached = threading.Event()

    def __call__(self, services: object) -> None:
        self.runs.append(services)
        if len(self.runs) >= self.target:
            self.reached.set()
        if self.fail:
            raise RuntimeError("storage hiccup")


def test_timers_run_at_start_then_every_interval_until_stopped() -> None:
    fast, slow = Counter(3), Counter(1)
    runner = TimerRunner(
        {"fast": TimerSpec(fast, 0.01), "slow": TimerSpec(slow, 3600.0)}, "services"
    ).start()
    try:
        assert fast.reached.wait(10) and slow.reached.wait(10)
    finally:
        runner.stop()
    assert set(fast.runs) == {"services"}
    assert slow.runs == ["services"]  # at start only: its interval has not come round
    assert not runner.running


def test_a_failing_timer_is_logged_and_still_runs_on_schedule(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = Counter(2, fail=True)
    runner = TimerRunner({"flaky": TimerSpec(failing, 0.01)}, None).start()
    try:
        assert failing.reached.wait(10)
    finally:
        runner.stop()
    assert "timer flaky failed" in caplog.text


def test_no_timers_starts_no_thread() -> None:
    runner = TimerRunner({}, None).start()
    assert not runner.running
    runner.stop()


def test_the_hosted_app_runs_every_timer_of_the_functions_app_and_its_telemetry() -> None:
    app = functions_app()
    assert sorted(app.timers) == sorted(timer_trigger_names()) == [METRICS_RETENTION_TIMER]
    assert app.timers[METRICS_RETENTION_TIMER].interval_s == LOCAL_TIMER_INTERVAL_S
    assert app.configure_telemetry is configure_app_telemetry
