"""``python -m llmcompiler``: the command line (see ``cli``)."""

import sys

from .cli import main

if __name__ == "__main__":  # also keeps worker processes that re-import __main__ from running it
    sys.exit(main())
