"""Tests of the Azure DevOps connector, against the fake organisation in tests/fakes/ado_server.py."""
