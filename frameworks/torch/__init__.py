"""torch backend (in progress)."""
