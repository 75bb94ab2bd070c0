"""Temper: a self-hosted model studio."""

__version__ = "0.1.0"
