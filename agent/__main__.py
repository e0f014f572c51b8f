"""``python -m agent``: run the agent's CLI and exit with its status."""

import sys

from .run_agent import main

if __name__ == "__main__":
    sys.exit(main())
