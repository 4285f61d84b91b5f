"""`python search/run.py`: the search's command (search.cli holds it; `from search import run` is the library's)."""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: make the project importable
    from search.cli import main

    sys.exit(main())
