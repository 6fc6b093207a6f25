"""nanobanana-sim: a local, schema-driven simulator of the Nano Banana image APIs."""

__version__ = "0.1.0"
