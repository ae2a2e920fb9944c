"""Run as a process: ``python -m tests.recordings.claim_holder ROOT CONTACT``: claim the
contact's recording, print ``claimed``, then hold it until killed."""

from __future__ import annotations

import sys
import time

from recordings.claim import Claim


def main(root: str, contact_id: str) -> None:
    claim = Claim.take(root, contact_id)
    (claim.directory).mkdir(parents=True, exist_ok=True)
    print("claimed", flush=True)
    while claim.held:
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
