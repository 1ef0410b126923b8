"""fednuclei: federated nuclei segmentation on H&E tiles."""

__version__ = "0.1.0"
