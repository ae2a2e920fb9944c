"""``python -m recordings``: see ``recordings.cli``."""

import sys

from recordings.cli import main

sys.exit(main())
