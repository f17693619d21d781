"""Tests of ``refinebot.store`` on a real SQLite file and a real PostgreSQL."""
