"""How an asyncio task awaits a run (used by ``RestoreExecutor.run``)."""

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def run_to_report(fut: "asyncio.Future[T]", cancel: Callable[[], object]) -> T:
    """Awaits the run's future. When the awaiting task is cancelled, cancels
    the run and keeps waiting: the run cleans up (or keeps what it made, with
    ``keep_on_cancel``) and its report, outcome ``"cancelled"``, is the
    result; the ``CancelledError`` is not raised (like Node's AbortSignal).
    """
    while True:
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            if fut.done():
                return fut.result()
            cancel()
