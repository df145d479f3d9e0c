"""A double-entry ledger of minor-unit integer amounts (no HTTP here); see `service`."""

from opase.ledger.service import *  # noqa: F403
from opase.ledger.service import __all__ as __all__
