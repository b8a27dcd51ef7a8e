"""ivr: an offline telephone IVR and voice assistant."""

__version__ = "0.1.0"
