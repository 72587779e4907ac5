"""``python -m modelwerk``: the same command line as the ``modelwerk`` script."""

import sys

from modelwerk.cli import main

sys.exit(main())
