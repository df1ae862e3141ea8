"""``python -m skksae``: the pretrain-then-classify comparison (see
``skksae._experiments.cli``)."""

import sys

from ._experiments.cli import main

if __name__ == "__main__":
    sys.exit(main())
