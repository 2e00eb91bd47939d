"""Activities: thin and idempotent; they call durabatch.providers and durabatch.store."""
