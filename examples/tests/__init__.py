"""Test suites of the example clients, run against the simulator through the `nanobanana` pytest fixture."""
