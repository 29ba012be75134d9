"""Alembic migrations of the library store, shipped in the package and run on open.

Append-only: a schema change is a new file in ``versions/``; shipped ones are never edited.
"""
