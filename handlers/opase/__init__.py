"""opase: an Open Payments server for account servicing entities."""

__version__ = "0.1.0"
