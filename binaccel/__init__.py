"""binaccel: binarized CNNs (MCN, SiMaN) from PyTorch to open FPGAs, bit-exactly."""
__version__ = "0.1.0"
