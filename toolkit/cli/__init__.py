"""The `toolkit` command line."""
