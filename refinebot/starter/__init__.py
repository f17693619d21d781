"""The commented starter configuration ``refinebot config init`` writes (the repository's config.example.toml)."""
