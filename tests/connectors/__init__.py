"""Tests of the source connectors."""
