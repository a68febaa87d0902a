"""``python -m pympc`` is the ``pympc`` command."""
import sys

from .cli import main

sys.exit(main())
