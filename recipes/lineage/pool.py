"""Stages side by side: ``processes`` fresh Python processes with one torch thread each.

On a machine of few cores, small models use the cores better as separate single-threaded training runs than as
one run with several threads (whose small matmuls spend much of their time synchronising), and far better when
other jobs share the cores.

Each stage seeds everything it draws, and the thread count is fixed by the preset, so the same command gives the
same numbers whichever process runs a stage and in whatever order they finish.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor


def one_thread() -> None:
    import torch

    torch.set_num_threads(1)


class InProcess(Executor):
    """An executor that runs each call at once, here: the stages in order, with the threads torch has."""

    def submit(self, fn: Callable, /, *args, **kwargs) -> Future:
        future = Future()
        future.set_result(fn(*args, **kwargs))  # an exception propagates at once, as a plain call's would
        return future


class Pool(ProcessPoolExecutor):
    """Single-threaded workers, spawned (no forked torch state); a failure cancels the stages not yet started."""

    def __init__(self, processes: int) -> None:
        super().__init__(processes, mp_context=multiprocessing.get_context("spawn"), initializer=one_thread)

    def __exit__(self, kind, error, traceback) -> bool:
        self.shutdown(wait=True, cancel_futures=error is not None)
        return False


def stage_pool(processes: int) -> Executor:
    """``processes`` workers of one torch thread each, or :class:`InProcess` for 1. What is submitted must pickle:
    module-level functions, ``functools.partial`` of them, plain data."""
    return Pool(processes) if processes > 1 else InProcess()
