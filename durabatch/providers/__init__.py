"""Provider batch API clients behind one interface (see base.BatchProvider)."""
