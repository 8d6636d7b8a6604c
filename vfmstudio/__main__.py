"""``python -m vfmstudio``."""

import sys

from vfmstudio.cli import main

sys.exit(main())
