"""Tests of the Slack digest: Block Kit, button values, posting against the fake Web API."""
