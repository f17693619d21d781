"""Several refinebot processes on one database: racing replicas, and processes killed at each step."""
