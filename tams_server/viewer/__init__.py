"""A small read-only web viewer of the store, served at ``/viewer/`` (see ``route``)."""
