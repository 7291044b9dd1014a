"""``python -m nin.bench worker``: one of ``nin bench``'s worker processes (``nin.bench.workers``)."""

import sys

from .workers import serve

if sys.argv[1:] == ["worker"]:
    serve()
