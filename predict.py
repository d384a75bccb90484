"""`python predict.py ...` from a clone: the same job as `segnet predict ...` (segnet/commands/predict.py)."""

import sys

from segnet.commands.predict import main

if __name__ == "__main__":
    sys.exit(main())
