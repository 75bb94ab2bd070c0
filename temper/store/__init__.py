"""Persistence: the SQLAlchemy engine, tables and migrations."""
