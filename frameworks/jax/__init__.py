"""jax backend (in progress)."""
