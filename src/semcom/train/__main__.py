"""``python -m semcom.train``: see ``semcom.train.cli``."""

import sys

from semcom.train.cli import main

if __name__ == "__main__":
    sys.exit(main())
