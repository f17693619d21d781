"""Tests of the digest cycle: ticket comments, replies and dry runs end to end."""
