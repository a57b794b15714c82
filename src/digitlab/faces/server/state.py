"""The models being served now, each with its micro-batcher, and how a route finds one by name (``pick``).

``reload`` loads a fresh set from disk beside the old one and swaps it in (SIGHUP, the v2 repository routes);
requests in flight finish on the models they started with."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

from fastapi import Request

from digitlab import service
from digitlab.core.errors import DigitlabError
from digitlab.faces.server import metrics
from digitlab.faces.server.middleware import HTTPError

log = logging.getLogger("digitlab.faces.server")


class Served:
    """The models being served now, each with its micro-batcher; ``reload`` swaps in a fresh set from disk."""

    def __init__(self, models: list[service.serving.ServedModel], request: service.serving.ServeRequest) -> None:
        self.request = request
        self.specs = list(request.models)
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="digitlab-infer")
        self.batchers: dict[str, service.batching.Batcher] = {}
        self.lock = asyncio.Lock()
        self._use(models)

    @property
    def models(self) -> list[service.serving.ServedModel]:
        return [b.served for b in self.batchers.values()]

    @property
    def default(self) -> service.batching.Batcher:
        return next(iter(self.batchers.values()))

    def _use(self, models: list[service.serving.ServedModel]) -> None:
        before = [(m.name, m.version, m.runtime) for m in self.models]
        old = self.batchers
        new: dict[str, service.batching.Batcher] = {}
        for served in models:
            kept = old.get(served.name)  # an unchanged model keeps its batcher (and its queue)
            if kept is None or (kept.served.version, kept.served.runtime) != (served.version, served.runtime):
                kept = service.batching.Batcher(served, self.thread, on_batch=_count_batch)
            new[served.name] = kept
        self.batchers = new  # one assignment: a request sees the old set or the new one, never a mix
        for name, batcher in old.items():
            if new.get(name) is not batcher:
                batcher.retire()
        metrics.models_changed(before, [(m.name, m.version, m.runtime) for m in models])

    async def reload(self, specs: list[str] | None = None) -> list[service.serving.ServedModel]:
        """Load ``specs`` (default: what is served) again from disk, then serve them; on failure keep the old set."""
        async with self.lock:
            wanted = list(specs if specs is not None else self.specs)
            request = dataclasses.replace(self.request, models=tuple(wanted))
            try:
                models = await asyncio.to_thread(service.serving.load_served, request)
            except DigitlabError:
                metrics.RELOADS.labels("failed").inc()
                raise
            self.specs = wanted
            self._use(models)
            metrics.RELOADS.labels("ok").inc()
            return models

    async def reload_logged(self) -> None:
        """SIGHUP: reload, and say in one line what is served now (or why the old models stay)."""
        try:
            models = await self.reload()
        except DigitlabError as exc:
            log.error("reload failed, still serving the models loaded before: %s", exc)
            return
        log.warning("reloaded: %s", ", ".join(f"{m.name} ({m.version})" for m in models))


def _count_batch(model: str, images: int) -> None:
    metrics.BATCH.labels(model).observe(images)


def served_models(http: Request) -> Served:
    """The app's served models (a route's dependency)."""
    found: Served = http.app.state.served
    return found


def pick(state: Served, name: str | None) -> service.batching.Batcher:
    """The batcher of model ``name`` (default: the first served); 404 for a model not loaded."""
    batchers = state.batchers
    if name is None:
        return state.default
    if name not in batchers:
        raise HTTPError(404, f"unknown model {name!r}; loaded: {', '.join(batchers)}.")
    return batchers[name]
