"""The tasks a test leaves behind, ended before its event loop closes, and named if they resist.

When a test's event loop closes, asyncio cancels every task still running once and waits for
them without a bound. A task that loses that one cancel (on Python 3.11 a cancel landing as
redis-py's own read timeout fires comes out as a ``TimeoutError``; a loop that retries on it
goes on) hangs the whole run, and the timeout that finally stops it shows only the threads'
stacks, where every task is one frame of the event loop. This fixture runs after every other
fixture of an async test has been torn down: it cancels what is left as the app's
``stop_tasks`` does (again every 200 ms, within a bound) and prints, with its stack, each task
that was still running a second after the first cancel (and warns, so the run's summary
names it even when the test passed), so a hang is named, not guessed at.
"""

from __future__ import annotations

import asyncio
import io
import sys
import warnings
from collections.abc import AsyncIterator

import pytest

from contact_center.background import stop_tasks

SUSPECT_AFTER_S = 1.0
WITHIN_S = 15.0


class TaskResistedCancel(pytest.PytestWarning):
    """A task a test left behind was still running a second after it was cancelled."""


def _describe(task: asyncio.Task[object]) -> str:
    frames = task.get_stack()
    where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames[-6:]))
    return f"{task.get_name()} ({where or task.get_coro()!r})"


@pytest.fixture(autouse=True)
async def tasks_end_with_the_test() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    if not left:
        return
    for task in left:
        task.cancel()
    _, resisting = await asyncio.wait(left, timeout=SUSPECT_AFTER_S)
    if not resisting:
        return
    for task in resisting:
        stack = io.StringIO()
        task.print_stack(file=stack)
        print(stack.getvalue(), file=sys.stderr)
        warnings.warn(
            TaskResistedCancel(
                f"still running {SUSPECT_AFTER_S:.0f} s after a cancel: {_describe(task)}\n"
                + stack.getvalue()
            ),
            stacklevel=1,
        )
    await stop_tasks(resisting, within_s=WITHIN_S)
    stuck = [task for task in resisting if not task.done()]
    if stuck:
        pytest.fail(
            f"{len(stuck)} task(s) did not end within {WITHIN_S:.0f} s of being cancelled: "
            + "; ".join(_describe(task) for task in stuck),
            pytrace=False,
        )
