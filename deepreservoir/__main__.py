"""``python -m deepreservoir`` runs the command line (see :mod:`deepreservoir.cli`)."""

from deepreservoir.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
