"""``python -m skksae``: the pretrain-then-classify comparison (see ``skksae._cli``)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
