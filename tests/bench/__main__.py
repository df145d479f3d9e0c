"""`python -m tests.bench`: see tests/bench/__init__.py."""

import sys

from tests.bench.runner import main

try:
    sys.exit(main())
except KeyboardInterrupt:  # the servers were stopped on the way out
    print("interrupted", file=sys.stderr)
    sys.exit(130)
