import sys

from facr.cli import main

sys.exit(main())
