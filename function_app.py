"""Lepton's Azure Functions app: the composition root, nothing else.

Creates the Durable Functions app (function-level auth by default; the health route opts out)
and registers the lifecycle blueprint (orchestrator, activities, HTTP routes, blob trigger).
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from lepton.functions.blueprint import bp

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(bp)
