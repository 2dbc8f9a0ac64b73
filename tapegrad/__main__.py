"""``python -m tapegrad``: the same as the ``tapegrad`` console script."""

import sys

from tapegrad.cli import main

sys.exit(main())
