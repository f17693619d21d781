"""Slack: Block Kit rendering and button values (pure), posting the digest, and the bolt app."""
