"""`python -m facerec ...` = the `facerec` command."""

import sys

from facerec.cli import main

sys.exit(main())
