"""An async test's tasks: the ones it leaves behind are ended, and a hung test names its own.

When a test's event loop closes, asyncio cancels every task still running once and waits for
them without a bound. A task that loses that one cancel (on Python 3.11 a cancel landing as
redis-py's own read timeout fires comes out as a ``TimeoutError``; a loop that retries on it
goes on) hangs the whole run, and the timeout that finally stops it shows only the threads'
stacks, where every task is one frame of the event loop. So:

- after every other fixture of an async test has been torn down, what is left is cancelled as
  the app's ``stop_tasks`` does (again every 200 ms, within a bound); a task still running a
  second after the first cancel is warned of with its stack (the run's summary names it even
  when the test passed);
- a test still running ``DUMP_BEFORE_TIMEOUT_S`` before pytest-timeout ends the run gets every
  task of its loop printed, with its stack, to the terminal (past the output capture: the
  timeout ends the process, and what was captured with it), so a hang is named, not guessed at.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import warnings
from collections.abc import AsyncIterator

import pytest

from contact_center.background import stop_tasks

SUSPECT_AFTER_S = 1.0
WITHIN_S = 15.0
DUMP_BEFORE_TIMEOUT_S = 20.0


class TaskResistedCancel(pytest.PytestWarning):
    """A task a test left behind was still running a second after it was cancelled."""


def _describe(task: asyncio.Task[object]) -> str:
    frames = task.get_stack()
    where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames[-6:]))
    return f"{task.get_name()} ({where or task.get_coro()!r})"


def task_stacks(tasks: list[asyncio.Task[object]]) -> str:
    out = io.StringIO()
    for task in tasks:
        print(f"--- {_describe(task)}", file=out)
        task.print_stack(file=out)
    return out.getvalue()


def _timeout_of(request: pytest.FixtureRequest) -> float:
    """pytest-timeout's limit for this test: its marker, else the command line, else the ini."""
    marker = request.node.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0] or 0)
    given = request.config.getoption("timeout", None)
    return float(given if given is not None else request.config.getini("timeout") or 0)


def _dump_on_hang(request: pytest.FixtureRequest, nodeid: str) -> threading.Timer | None:
    """A timer that, shortly before the test's timeout, prints its loop's tasks (from the
    loop's own thread, when the loop still turns; else from the timer's)."""
    timeout = _timeout_of(request)
    if timeout <= DUMP_BEFORE_TIMEOUT_S:
        return None
    loop = asyncio.get_running_loop()
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def dump() -> None:
        text = f"\n=== {nodeid}: still running; its tasks ===\n" + task_stacks(list(asyncio.all_tasks(loop)))
        with capture.global_and_fixture_disabled():
            sys.stderr.write(text)
            sys.stderr.flush()

    def fire() -> None:
        done = threading.Event()

        def in_loop() -> None:
            try:
                dump()
            finally:
                done.set()

        loop.call_soon_threadsafe(in_loop)
        if not done.wait(5.0):  # the loop itself is stuck: read the tasks from here
            dump()

    timer = threading.Timer(timeout - DUMP_BEFORE_TIMEOUT_S, fire)
    timer.daemon = True
    timer.start()
    return timer


@pytest.fixture(autouse=True)
async def tasks_end_with_the_test(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    timer = _dump_on_hang(request, request.node.nodeid)
    try:
        yield
        await _end_leftovers()
    finally:
        if timer is not None:
            timer.cancel()


async def _end_leftovers() -> None:
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
        warnings.warn(
            TaskResistedCancel(
                f"still running {SUSPECT_AFTER_S:.0f} s after a cancel:\n{task_stacks([task])}"
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
