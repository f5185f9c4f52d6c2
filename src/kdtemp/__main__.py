"""``python -m kdtemp``: the same command line as ``kdtemp``."""

import sys

from .cli import main

sys.exit(main())
