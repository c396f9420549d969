import sys

from robustcompress.cli import main

sys.exit(main())
