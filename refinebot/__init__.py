"""refinebot: keeps product backlogs ready for refinement."""

__version__ = "0.1.0"
