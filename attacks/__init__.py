"""wmbench's built-in attacks, installed as the package ``wmbench_attacks``.

Each module registers its attacks through :mod:`wmbench.api` only and is listed in
the ``wmbench.attacks`` entry-point group of pyproject.toml, exactly as a third-party
plugin package would be.
"""
