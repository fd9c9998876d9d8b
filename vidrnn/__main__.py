import sys

from vidrnn.cli import main

sys.exit(main())
