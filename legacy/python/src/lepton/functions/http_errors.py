"""The one mapping from errors to HTTP responses for every Lepton route.

A :class:`~lepton.shared.errors.LeptonError` becomes its ``status_code`` with the body
``{"error": code, "message": ...}``; anything else is a 500 whose message hides internals (the
details go to the log, correlated by the logged exception).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

import azure.functions as func

from lepton.shared.errors import LeptonError

_log = logging.getLogger(__name__)


def json_response(body: Any, status_code: int = 200) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, default=str), status_code=status_code, mimetype="application/json"
    )


def error_response(err: Exception) -> func.HttpResponse:
    if isinstance(err, LeptonError):
        return json_response({"error": err.code, "message": str(err)}, err.status_code)
    _log.exception("unhandled error in an HTTP route", exc_info=err)
    return json_response(
        {"error": "internal", "message": "internal error; the details are in the server log"},
        500,
    )


Handler = Callable[..., Awaitable[func.HttpResponse]]


def mapped(handler: Handler) -> Handler:
    """Wrap an async handler so every raised error becomes :func:`error_response`."""

    @wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> func.HttpResponse:
        try:
            return await handler(*args, **kwargs)
        except Exception as err:  # the single place errors turn into responses
            return error_response(err)

    return wrapper
