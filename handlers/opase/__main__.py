"""python -m opase: the same as the `opase` command."""

import sys

from opase.cli.main import main

sys.exit(main())
