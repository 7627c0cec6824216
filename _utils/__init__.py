"""Shared pure-Python code of saltext.expressware, loaded by path by every loader module."""
