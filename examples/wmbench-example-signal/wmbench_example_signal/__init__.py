"""Example wmbench modality plugin: 1-D float signals (sensor traces).

The modality lives in :mod:`.modality`, the ``spreadTrace`` mark in :mod:`.marks`, the
``additive_noise`` and ``lowpass`` attacks in :mod:`.attacks` and the report view in
:mod:`.view`; wmbench reaches each through an entry point in ``pyproject.toml``. This
file stays empty on purpose, so that importing one part never imports the others.
"""
