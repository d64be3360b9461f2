"""The paper-reproduction studies, shipped inside the package as ``deepreservoir._studies``.

This folder is their home in the repository (their committed results are in
``results/``); ``pip install`` maps it to ``deepreservoir._studies`` so that
``deepreservoir reproduce`` finds them from any folder. Studies are loaded by
path (see :mod:`deepreservoir.studies`), not imported as a package.
"""
