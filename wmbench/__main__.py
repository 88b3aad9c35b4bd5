"""``python -m wmbench`` runs the command line."""

import sys

from wmbench.cli import main

sys.exit(main())
