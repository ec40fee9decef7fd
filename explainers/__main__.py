"""``python -m explainers ...``: see explainers/cli.py."""
import sys

from .cli_run import start_early

start_early(sys.argv[1:])  # a Ray run starts Ray before the engine's imports below
from .cli import main  # noqa: E402

sys.exit(main())
