"""Backends run jobs and hold files: ``local`` (embedded) and ``dirac`` (the grid)."""
