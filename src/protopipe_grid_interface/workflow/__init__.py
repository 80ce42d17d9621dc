"""Stage logic: takes a Backend and a Store, never prints, never imports the CLI."""
