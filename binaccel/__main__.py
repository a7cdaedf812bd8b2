import sys

from binaccel.cli import main

sys.exit(main())
