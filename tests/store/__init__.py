"""Tests of the library store, each run on SQLite and on PostgreSQL."""
