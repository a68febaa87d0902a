"""Command-line tools that are not ranks: the ``pympc`` command, ``pympc info`` and the
``mpiexec`` launcher."""
