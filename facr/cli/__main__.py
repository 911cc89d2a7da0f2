"""``python -m facr.cli``: the ``facr`` command."""

import sys

from facr.cli import main

sys.exit(main())
