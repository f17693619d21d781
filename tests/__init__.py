"""refinebot's test suite."""
