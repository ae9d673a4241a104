"""The HTTP edge: turns requests into calls to `fanout.service`."""
