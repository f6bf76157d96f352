"""``python -m semcom.cli ...``: the command line."""

import sys

from semcom.cli import main

sys.exit(main())
