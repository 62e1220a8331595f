"""A small client of Lepton's HTTP API and the worker's inference API, used by the CLI and demo.

Works against the local stack (no key) and an Azure deployment (``x-functions-key``). Every failure
becomes :class:`ApiError` with a message that says what to do next: an unreachable API suggests
starting the local stack or checking ``--api-url``; an error response carries the server's message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from lepton.shared.errors import LeptonError

DEFAULT_API_URL = "http://127.0.0.1:7071"
DEFAULT_WORKER_URL = "http://127.0.0.1:8000"


class ApiError(LeptonError):
    """The API could not be reached or answered with an error."""

    def __init__(self, message: str, status_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class ApiConfig:
    api_url: str = DEFAULT_API_URL
    key: str | None = field(default=None, repr=False)
    worker_url: str = DEFAULT_WORKER_URL
    timeout_s: float = 30.0

    @property
    def is_local(self) -> bool:
        return self.api_url.startswith(("http://127.0.0.1", "http://localhost"))


class LeptonApi:
    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        headers = {"x-functions-key": config.key} if config.key else {}
        self._http = httpx.Client(timeout=config.timeout_s, headers=headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LeptonApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unreachable(self, url: str, err: Exception) -> ApiError:
        base = self.config.api_url
        if url.startswith(self.config.worker_url):
            hint = (
                "start the local stack with `make run` (it starts the worker on "
                f"{self.config.worker_url}), or pass --worker-url"
            )
            what = f"the worker at {self.config.worker_url}"
        elif self.config.is_local:
            hint = "start the local stack with `make run` (or `lepton dev`) and try again"
            what = f"the API at {base}"
        else:
            hint = "check --api-url / LEPTON_API_URL and your network"
            what = f"the API at {base}"
        return ApiError(f"{what} is not reachable ({type(err).__name__}): {hint}")

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.TransportError as err:
            raise self._unreachable(url, err) from None
        if response.status_code in {401, 403}:
            raise ApiError(
                f"{url} refused the request ({response.status_code}): pass the function key "
                "with --key or LEPTON_API_KEY",
                response.status_code,
            )
        if response.is_error:
            try:
                body = response.json()
                message = body.get("message") or body.get("error") or response.text
            except ValueError:
                message = response.text or response.reason_phrase
            raise ApiError(f"{message}", response.status_code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, f"{self.config.api_url}/api/{path.lstrip('/')}", **kwargs)

    # -- lifecycle API ----------------------------------------------------------------------

    def health(self) -> Any:
        return self.api("GET", "health")

    def models(self) -> list[str]:
        return list(self.api("GET", "models")["models"])

    def model(self, model: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api("GET", f"models/{model}")
        return result

    def version(self, model: str, version: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api("GET", f"models/{model}/versions/{version}")
        return result

    def history(self, model: str, version: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"models/{model}/versions/{version}/history")["events"])

    def operate(
        self, model: str, version: str, action: str, reason: str, actor: str = "cli"
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.api(
            "POST",
            f"models/{model}/versions/{version}/{action}",
            json={"reason": reason, "actor": actor},
        )
        return result

    def set_routes(self, model: str, changes: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.api("PUT", f"models/{model}/routes", json=changes)
        return result

    # -- worker (Open Inference Protocol) ----------------------------------------------------

    def infer(
        self,
        model: str,
        body: dict[str, Any],
        version: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
        result: dict[str, Any] = self.request(
            "POST", self.config.worker_url + path, json=body, headers=headers or {}
        )
        return result

    def worker_model(self, model: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"{self.config.worker_url}/v2/models/{model}")
        return result
