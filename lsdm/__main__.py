import sys

from lsdm.cli import main

sys.exit(main())
