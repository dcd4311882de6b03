import sys

from orvad.cli import main

sys.exit(main())
