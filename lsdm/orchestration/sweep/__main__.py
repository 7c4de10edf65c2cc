"""`python -m lsdm.orchestration.sweep`: the same as `lsdm sweep`."""

import sys

from lsdm.orchestration.sweep.cli import main

sys.exit(main())
