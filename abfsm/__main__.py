"""`python -m abfsm` is the same program as the `abfsm` console script."""

from abfsm.cli import main

raise SystemExit(main())
