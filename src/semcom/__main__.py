"""``python -m semcom ...`` (and ``torchrun ... -m semcom bench ...``): the command line."""

import sys

from semcom.cli import main

sys.exit(main())
