"""CareBridge: an open internet-hospital platform."""

__version__ = "0.1.0"
