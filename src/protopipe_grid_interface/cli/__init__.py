"""Thin command-line adapters: parse, call the workflow, render. The only code that prints."""
