"""The HTTP face of the simulator: the app, routing by host, the journal recorder, the control plane."""
