"""Micro-batching for the server: images of requests that arrive together go through the model in one call.

Part of the one reading path (``predictor``): ``Batcher.answers`` ends in ``Predictor.answers``
like every other path; only the model call is shared between requests. Requests put their
inked images on a queue; one task takes whatever is waiting (up to ``max_images``), runs the
model once on the inference thread, and hands each request its rows. One image per request
under load costs one model call per batch, not per request.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from digitlab.core.errors import DigitlabError
from digitlab.data.pictures import inked_rows
from digitlab.service.predictor import Prediction
from digitlab.service.serving import ServedModel, ServeRequest, load_served

MAX_IMAGES = 256  # images in one model call


class Batcher:
    """One served model's queue and its task on the inference thread (see the module's text)."""

    def __init__(
        self,
        served: ServedModel,
        thread: ThreadPoolExecutor,
        max_images: int = MAX_IMAGES,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        self.served, self.thread, self.max_images, self.on_batch = served, thread, max_images, on_batch
        self.queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future[np.ndarray]] | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.retired = False

    async def answers(self, images: np.ndarray, names: Sequence[str]) -> list[Prediction]:
        """The answer for each (28, 28) image, as ``Predictor.answers`` gives it, the model call shared."""
        inked = inked_rows(images)
        proba = await self.probabilities(images[inked])
        return self.served.predictor.answers(images, names, proba, inked)

    async def probabilities(self, images: np.ndarray) -> np.ndarray:
        """(n, k) float32 class probabilities of (n, 28, 28) images (every one: v2 reads blank ones too)."""
        if len(images) == 0:
            return np.zeros((0, len(self.served.classes)), np.float32)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self.queue.put((images, future))
        return await future

    def retire(self) -> None:
        """A reload replaced this model: answer what is queued, then stop."""
        self.retired = True
        self.queue.put_nowait(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self.retired and self.queue.empty():
                return
            first = await self.queue.get()
            if first is None:
                continue
            waiting = [first]
            size = len(first[0])
            while not self.queue.empty() and size < self.max_images:
                item = self.queue.get_nowait()
                if item is not None:
                    waiting.append(item)
                    size += len(item[0])
            live = [(images, future) for images, future in waiting if not future.cancelled()]
            if not live:
                continue
            batch = np.concatenate([images for images, _ in live]) if len(live) > 1 else live[0][0]
            if self.on_batch is not None:
                self.on_batch(self.served.name, len(batch))
            try:
                proba = await loop.run_in_executor(self.thread, self.served.probabilities, batch)
            except Exception as exc:  # handed to each waiting request
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for images, future in live:
                if not future.done():
                    future.set_result(proba[start : start + len(images)])
                start += len(images)


Version = tuple[str, str, str]  # (name, version, runtime) of a served model


class ServedSet:
    """The models being served now, each with its ``Batcher``, on one inference thread (one batch at a time:
    two cores are not shared by competing thread teams). ``reload`` loads a fresh set from disk beside the old
    one and swaps it in with one assignment: a request holds the batcher it picked, so it finishes on the model
    it started with, and a replaced batcher answers its queue and stops. The hooks let a face count: each
    batch (model, images), each change of the set (before, after), each reload (ok or not)."""

    def __init__(
        self,
        models: list[ServedModel],
        request: ServeRequest,
        on_batch: Callable[[str, int], None] | None = None,
        on_change: Callable[[list[Version], list[Version]], None] | None = None,
        on_reload: Callable[[bool], None] | None = None,
    ) -> None:
        self.request = request
        self.specs = list(request.models)
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="digitlab-infer")
        self.batchers: dict[str, Batcher] = {}
        self.lock = asyncio.Lock()
        self.on_batch, self.on_change, self.on_reload = on_batch, on_change, on_reload
        self._use(models)

    @property
    def models(self) -> list[ServedModel]:
        return [b.served for b in self.batchers.values()]

    @property
    def default(self) -> Batcher:
        return next(iter(self.batchers.values()))

    def pick(self, name: str | None) -> Batcher | None:
        """The batcher of model ``name`` (default: the first served); None for a model not served."""
        return self.default if name is None else self.batchers.get(name)

    def _use(self, models: list[ServedModel]) -> None:
        before = [(m.name, m.version, m.runtime) for m in self.models]
        old = self.batchers
        new: dict[str, Batcher] = {}
        for served in models:
            kept = old.get(served.name)  # an unchanged model keeps its batcher (and its queue)
            if kept is None or (kept.served.version, kept.served.runtime) != (served.version, served.runtime):
                kept = Batcher(served, self.thread, on_batch=self.on_batch)
            new[served.name] = kept
        self.batchers = new  # one assignment: a request sees the old set or the new one, never a mix
        for name, batcher in old.items():
            if new.get(name) is not batcher:
                batcher.retire()
        if self.on_change is not None:
            self.on_change(before, [(m.name, m.version, m.runtime) for m in models])

    async def reload(self, specs: list[str] | None = None) -> list[ServedModel]:
        """Load ``specs`` (default: what is served) again from disk, then serve them; on failure keep the old set."""
        async with self.lock:
            wanted = list(specs if specs is not None else self.specs)
            request = dataclasses.replace(self.request, models=tuple(wanted))
            try:
                models = await asyncio.to_thread(load_served, request)
            except DigitlabError:
                if self.on_reload is not None:
                    self.on_reload(False)
                raise
            self.specs = wanted
            self._use(models)
            if self.on_reload is not None:
                self.on_reload(True)
            return models
