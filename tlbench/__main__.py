"""`python -m tlbench` is the `tlbench` command."""

import sys

from .cli import main

sys.exit(main())
