"""`python train.py ...` from a clone: the same job as `segnet train ...` (segnet/commands/train.py)."""

import sys

from segnet.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
