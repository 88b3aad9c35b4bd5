"""wmbench: does a watermark survive attacks? Embed, attack, detect, report with calibrated rates."""

__version__ = "0.1.0"
