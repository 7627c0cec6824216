"""Loader modules of saltext.expressware (see the top-level README)."""
