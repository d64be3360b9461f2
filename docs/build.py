"""Build the API reference (HTML) from the docstrings with pdoc.

Run from the repository root::

    python docs/build.py                  # writes docs/api/
    python docs/build.py --output DIR     # anywhere else

Needs ``pdoc`` (``pip install -e ".[docs]"`` or ``pip install pdoc``). Exits
with status 1 and a one-line message when pdoc is missing or the build fails.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import warnings
from pathlib import Path

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "api"


def public_modules(package: str = "deepreservoir") -> list[str]:
    """The package and every submodule whose name has no leading underscore."""
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def build(output: Path) -> list[Path]:
    """Render the ``deepreservoir`` package and its submodules into ``output``."""
    import pdoc
    import pdoc.render

    pdoc.render.configure(docformat="numpy", math=True, search=True, show_source=True,
                          footer_text="deepreservoir API reference")
    output.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # a package spec already pulls in its listed submodules; repeats are harmless
        warnings.filterwarnings("ignore", message="The module specification")
        pdoc.pdoc(*public_modules(), output_directory=output)
    return sorted(output.rglob("*.html"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="folder for the HTML (default: docs/api)")
    args = parser.parse_args(argv)
    try:
        import pdoc  # noqa: F401
    except ImportError:
        print("docs/build.py needs pdoc: pip install -e \".[docs]\" (or pip install pdoc)",
              file=sys.stderr)
        return 1
    pages = build(args.output)
    print(f"API reference: {len(pages)} pages in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
