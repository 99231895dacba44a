"""``python -m radlite_edge.cli``: the same as the ``radlite`` command."""

import sys

from . import main

sys.exit(main())
