"""``python -m modalab`` runs the command line."""

import sys

from modalab.cli.main import main

sys.exit(main())
