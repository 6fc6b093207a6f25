"""Example clients for the Nano Banana providers (see README.md)."""
