"""Modality packages: one per kind of content (image, text, ...), each registered through
the ``wmbench.modalities`` entry-point group exactly as a third-party modality is."""
