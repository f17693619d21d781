"""Sources of backlog items: one module per source behind the ``Connector`` protocol."""
