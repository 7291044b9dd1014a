"""mxnet backend (in progress)."""
