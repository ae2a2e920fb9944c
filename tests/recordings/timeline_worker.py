"""Run as a process: ``python tests/recordings/timeline_worker.py DIR [slow]``.

Appends timeline events to DIR until killed, every second one with a large text, and prints
each event's ``seq`` once it is written. With ``slow``, every ``os.write`` of the process writes
at most 4 KiB and then waits 1 ms (a slow disk, or short writes): a line then takes tens of
milliseconds to write, so a kill nearly always lands inside one, which a fast tmpfs makes
rare. The writer's own loop over short writes is what runs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from recordings.timeline import TimelineWriter

BIG = 256 * 1024


def text_for(seq: int) -> str:
    """The text of event ``seq`` (the test recomputes it to check each line whole)."""
    body = f"line {seq} card 4111 1111 1111 1111 "
    return body + "x" * (BIG if seq % 2 == 0 else 10)


def main(directory: Path, slow: bool) -> None:
    if slow:
        write = os.write

        def short_write(fd: int, data: bytes | memoryview) -> int:
            written = write(fd, data[:4096])
            time.sleep(0.001)
            return written

        os.write = short_write
    with TimelineWriter(directory) as writer:
        while True:
            seq = writer.seq + 1
            writer.append("chat", text=text_for(seq), who="customer")
            print(seq, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:] == ["slow"])
