"""Weighted, sticky routing of a model's requests over its production and candidate versions.

A sticky key is hashed with BLAKE2b of ``model`` and the key into a bucket 0..9999; the caller goes
to the candidate when the bucket is below the candidate weight (basis points). The hash is stable
across replicas and restarts, and since a bucket below the old weight is also below any larger
weight, raising the weight only ever moves callers from production to the candidate. Without a key
each request draws its own bucket. The router only sends traffic to versions that are ready: until
a new production version is warm the previous one keeps serving, a candidate that is not warm gets
no share, so a swap never fails a request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from lepton.shared.records import BASIS_POINTS, Routes


def sticky_bucket(model: str, key: str) -> int:
    """The caller's stable bucket in 0..9999 for ``model``."""
    digest = hashlib.blake2b(f"{model}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BASIS_POINTS


@dataclass(frozen=True)
class RouteTable:
    """The routes a replica actually applies right now (only ready versions)."""

    model: str
    production: str | None
    candidate: str | None = None
    candidate_weight_bp: int = 0
    shadow: str | None = None
    shadow_fraction_bp: int = 0
    sticky_header: str | None = None
    generation: int = 0

    def pick(self, sticky_key: str | None, draw_bp: int) -> str | None:
        """The version that serves a request; ``draw_bp`` (0..9999) is used without a key."""
        if self.candidate is not None and self.candidate_weight_bp > 0:
            bucket = sticky_bucket(self.model, sticky_key) if sticky_key is not None else draw_bp
            if bucket < self.candidate_weight_bp:
                return self.candidate
        return self.production

    def mirrors(self, draw_bp: int, served: str) -> str | None:
        """The shadow version to mirror a request to, if this request is sampled."""
        if self.shadow is None or self.shadow == served or draw_bp >= self.shadow_fraction_bp:
            return None
        return self.shadow


def effective_routes(
    stored: Routes, is_ready: Callable[[str], bool], previous: RouteTable | None
) -> RouteTable:
    """What to apply given the stored routes and which versions are ready on this replica."""
    production = stored.production if stored.production and is_ready(stored.production) else None
    if production is None and previous is not None and previous.production is not None:
        # The new production version is still warming up: keep the old one serving.
        production = previous.production if is_ready(previous.production) else None
    candidate, weight = None, 0
    if stored.candidate and stored.candidate_weight_bp > 0 and is_ready(stored.candidate):
        candidate, weight = stored.candidate, stored.candidate_weight_bp
        if production is None:
            weight = BASIS_POINTS  # nothing else can serve
    shadow, fraction = None, 0
    if stored.shadow and stored.shadow_fraction_bp > 0 and is_ready(stored.shadow):
        shadow, fraction = stored.shadow, stored.shadow_fraction_bp
    return RouteTable(
        model=stored.model,
        production=production,
        candidate=candidate,
        candidate_weight_bp=weight,
        shadow=shadow,
        shadow_fraction_bp=fraction,
        sticky_header=stored.sticky_header,
        generation=stored.generation,
    )
