"""Tests of the pre-refinement agenda."""
