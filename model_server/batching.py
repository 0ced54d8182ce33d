"""Micro-batching: requests that arrive together, or while the model is busy, are scored in one call.

There is no waiting window: requests queued by the time the event loop gets to them are merged, so
batching adds no latency at low load and turns many single-row calls into one under load. Small
batches are scored right on the event loop (a thread hand-off would cost more than the scoring);
large ones on one worker thread (XGBoost releases the GIL), so the loop keeps reading requests.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


class MicroBatcher:
    """Queues encoded float32 `[n, k]` matrices and scores the queued ones with one `predict` call."""

    def __init__(self, predict: Predict, max_rows: int, inline: Predict | None = None, inline_rows: int = 0):
        """`predict` runs on the worker thread; batches of up to `inline_rows` rows go to `inline`."""
        self._predict = predict
        self._max_rows = max_rows
        self._inline = inline
        self._inline_rows = inline_rows if inline else 0
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")

    async def score(self, x: np.ndarray) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((x, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch = self._take()
                matrices = [x for x, _ in batch]
                x = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
                try:
                    if self._inline is not None and len(x) <= self._inline_rows:
                        scores = self._inline(x)
                    else:
                        scores = await loop.run_in_executor(self._executor, self._predict, x)
                except Exception as e:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                start = 0
                for matrix, future in batch:
                    if not future.done():
                        future.set_result(scores[start : start + len(matrix)])
                    start += len(matrix)
        finally:
            self._drainer = None

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        rows, count = 0, 0
        for x, _ in self._pending:
            if count and rows + len(x) > self._max_rows:
                break
            rows += len(x)
            count += 1
        batch, self._pending = self._pending[:count], self._pending[count:]
        return batch

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
