"""Tests of the pure comment modules: the verb table and the composed comment."""
