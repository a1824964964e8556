"""The ``streamer`` command line."""
