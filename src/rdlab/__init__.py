"""rdlab: reaction networks and reaction-diffusion systems."""

__version__ = "0.1.0"
