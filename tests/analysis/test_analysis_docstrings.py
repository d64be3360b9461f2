"""The examples in the analysis docstrings run and print what they claim."""

import doctest
import importlib

import pytest

# by name: the package attribute ``spectra`` is the function, not the module
MODULES = ["beta", "dimension", "esp", "lyapunov", "spectra"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"deepreservoir.analysis.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
