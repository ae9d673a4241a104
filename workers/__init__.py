"""The queue edge: poll loops and the local process runtime, calling `fanout.service`."""
