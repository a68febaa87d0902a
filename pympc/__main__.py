"""``python -m pympc`` is the ``pympc`` command."""
import sys

from .tools.cli import main

sys.exit(main())
