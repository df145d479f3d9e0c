"""python -m opase: the same as the `opase` command."""

import sys

from opase.cli import main

sys.exit(main())
