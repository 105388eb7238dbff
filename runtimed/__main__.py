import sys

from runtimed.cli import main

sys.exit(main())
