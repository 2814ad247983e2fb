"""Thin HTTP handlers, one module per TAMS spec tag: read the request, call the backend, shape the response."""
