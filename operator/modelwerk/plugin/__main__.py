"""``python -m modelwerk.plugin``: the same command as ``kubectl-modelwerk``."""

import sys

from modelwerk.plugin.entry import main

sys.exit(main())
