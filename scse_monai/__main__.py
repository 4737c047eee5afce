"""``python -m scse_monai`` is the ``scse-monai`` command line."""

from scse_monai.cli import main

raise SystemExit(main())
