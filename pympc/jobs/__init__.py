"""pympc's job layer: job files, run directories, `pympc run`."""
