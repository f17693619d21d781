"""The rules engine: one module per rule family, one ``Rule`` base class and one registry."""
