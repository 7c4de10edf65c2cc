import sys

from lsdm.pipeline.cli import main

sys.exit(main())
