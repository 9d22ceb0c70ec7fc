"""`python -m marimo_collab_ext.cli`: the `marimo-collab` command without its console script."""

import sys

from . import main

sys.exit(main())
