"""``python -m modelwerk.plugin``: the same command as ``kubectl-modelwerk``."""

import sys

from modelwerk.plugin.cli import main

sys.exit(main())
