"""Micro-batching for the server: images of requests that arrive together go through the model in one call.

Part of the one reading path (``predictor``): ``Batcher.answers`` ends in ``Predictor.answers``
like every other path; only the model call is shared between requests. Requests put their
inked images on a queue; one task takes whatever is waiting (up to ``max_images``), runs the
model once on the inference thread, and hands each request its rows. One image per request
under load costs one model call per batch, not per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from digitlab.data.pictures import inked_rows
from digitlab.service.predictor import Prediction
from digitlab.service.serving import ServedModel

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
