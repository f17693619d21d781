"""Tests of the rules engine and its data-driven rule cases."""
