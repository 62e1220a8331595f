"""Lepton's Azure Functions app: the composition root, nothing else.

Sets up the app's telemetry (spans and metrics to Application Insights when its connection string
is set), creates the Durable Functions app (function-level auth by default; the health route opts
out) and registers the lifecycle blueprint (orchestrator, activities, HTTP routes, blob trigger,
metric-retention timer).
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from lepton.functions.blueprint import bp
from lepton.functions.services import configure_app_telemetry

configure_app_telemetry()
app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(bp)
