"""`python -m facerec ...` = the `facerec` command."""

import sys

from .cli import main

sys.exit(main())
