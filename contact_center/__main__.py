"""``python -m contact_center`` runs the command line."""

import sys

from contact_center.cli import main

sys.exit(main())
