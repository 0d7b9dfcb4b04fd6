"""Electra: an open platform for EV charging settled on an EVM chain."""

__version__ = "0.1.0"
