"""Imported once by the fork server, so that every worker starts with it in memory.

Workers are forked from a server process that has imported only what is listed
here; each would otherwise import torch (through imwatermark), OpenCV and the
plugins itself, ~2 s per worker before its first job. Only imports: a process that
has run OpenCV or ONNX code cannot be forked safely.
"""

import cv2  # noqa: F401
import imwatermark  # noqa: F401  (imports torch)
import threadpoolctl  # noqa: F401

from wmbench import execute, registry  # noqa: F401

registry.attacks()  # imports the entry-point plugins (methods and attacks)
