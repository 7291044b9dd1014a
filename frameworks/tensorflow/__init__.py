"""tensorflow backend (in progress)."""
