"""`python -m wavebench` runs the command line (torchrun needs a module)."""
import sys

from wavebench.cli import main

sys.exit(main())
