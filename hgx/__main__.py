import sys

from hgx.cli import main

sys.exit(main())
