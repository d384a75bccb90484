"""`python evaluate.py ...` from a clone: the same job as `segnet evaluate ...` (segnet/commands/evaluate.py)."""

import sys

from segnet.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
