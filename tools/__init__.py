"""Developer tools for tams-server."""
