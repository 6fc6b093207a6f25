"""Transport adapters onto the request pipeline: HTTP (simulator.transports.http) and in-process
(simulator.transports.inprocess). Each turns what arrived into an `Exchange`, runs it through
`Pipeline.run`, and puts the `Answer` on its own wire."""
