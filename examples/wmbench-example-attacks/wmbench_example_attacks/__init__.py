"""Example wmbench attacks; the attacks themselves live in :mod:`.attacks`.

This file stays empty on purpose: wmbench imports ``wmbench_example_attacks.attacks``
through the entry point, and ``--plugins`` folders skip files starting with "_".
"""
