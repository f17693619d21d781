"""The bundled demo: a realistic Jira backlog export and the config that reads it."""
