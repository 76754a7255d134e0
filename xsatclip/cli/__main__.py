"""``python -m xsatclip.cli``: the same as the ``xsatclip`` command."""

import sys

from . import main

sys.exit(main())
