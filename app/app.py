"""The facr chat explainer as a script: ``python app/app.py [--model ...] [--verbalizer ...]``.

The same app as ``facr chat`` (one app, built by :func:`facr.chat.ui.build_app` from facr's public
API); see ``python app/app.py --help``.
"""

import sys

from facr.chat.ui import main

if __name__ == "__main__":
    sys.exit(main())
