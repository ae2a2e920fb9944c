"""A recording call that runs until killed: ``python -m tests.recordings.crash_call DIR``.

Prints ``recording`` once every track has written frames, then keeps the call going; the SIGKILL
test kills it and checks that the files it leaves can be opened and decoded.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from contact_center.media.call import CallMedia
from contact_center.media.ice import IceSettings
from contact_center.tools.synthetic import SyntheticPeer


async def main(directory: Path) -> None:
    ice = IceSettings.loopback()
    call = CallMedia("crash", ice)
    customer = SyntheticPeer(ice, name="customer")
    advisor = SyntheticPeer(ice, name="advisor")
    call.start_recording(directory)
    for party, peer in (("customer", customer), ("advisor", advisor)):
        await peer.accept_answer(await call.answer(party, await peer.offer()))  # type: ignore[arg-type]
    recorder = call.recorder
    assert recorder is not None
    while len(recorder.writers) < 4 or any(w.frames_written == 0 for w in recorder.writers):
        await asyncio.sleep(0.05)
    print("recording", flush=True)
    await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
