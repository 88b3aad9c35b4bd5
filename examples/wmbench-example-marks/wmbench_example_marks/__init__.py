"""Example wmbench watermarking method; the method itself lives in :mod:`.marks`.

This file stays empty on purpose: wmbench imports ``wmbench_example_marks.marks``
through the entry point, and ``--plugins`` folders skip files starting with "_".
"""
