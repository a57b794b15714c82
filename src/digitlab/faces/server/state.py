"""The served models of this process (``service.batching.ServedSet``) with the server's counters hooked in, and
how a route finds one by name (``pick``: 404 for a model not served)."""

from __future__ import annotations

import logging

from fastapi import Request

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.server import metrics
from digitlab.faces.server.middleware import HTTPError

log = logging.getLogger("digitlab.faces.server")


class Served(service.batching.ServedSet):
    """The ServedSet whose batches, changes and reloads the Prometheus metrics count."""

    def __init__(self, models: list[service.serving.ServedModel], request: service.serving.ServeRequest) -> None:
        super().__init__(
            models,
            request,
            on_batch=lambda model, images: metrics.BATCH.labels(model).observe(images),
            on_change=metrics.models_changed,
            on_reload=lambda ok: metrics.RELOADS.labels("ok" if ok else "failed").inc(),
        )

    async def reload_logged(self) -> None:
        """SIGHUP: reload, and say in one line what is served now (or why the old models stay)."""
        try:
            models = await self.reload()
        except DigitlabError as exc:
            log.error("reload failed, still serving the models loaded before: %s", exc)
            return
        log.warning("reloaded: %s", ", ".join(f"{m.name} ({m.version})" for m in models))


def served_models(http: Request) -> Served:
    """The app's served models (a route's dependency)."""
    found: Served = http.app.state.served
    return found


def pick(state: Served, name: str | None) -> service.batching.Batcher:
    """The batcher of model ``name`` (default: the first served); 404 for a model not served."""
    found = state.pick(name)
    if found is None:
        raise HTTPError(404, f"unknown model {name!r}; loaded: {', '.join(state.batchers)}.")
    return found
