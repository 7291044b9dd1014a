"""``python -m nin``: the ``nin`` command (``nin.cli``), for machines where the console script
is not on the PATH."""

import sys

from .cli import main

sys.exit(main())
