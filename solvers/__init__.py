"""Numerical solvers built on pympc: ``import solvers``.

Each solver takes ``comm=`` and runs on pympc's decomposition layer. The heat, wave and
Poisson solvers, then Krylov methods and multigrid, land here.
"""
