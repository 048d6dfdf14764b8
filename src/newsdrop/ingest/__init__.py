"""seeds/ -> entries in the store: scan, read, normalise (pure), markup (pure)."""
