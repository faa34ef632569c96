"""Entry point: ``python -m stress``."""

import sys

from .cli import main

sys.exit(main())
