"""``python -m contact_center`` runs the command line."""

import sys

from contact_center.server.cli import main

sys.exit(main())
