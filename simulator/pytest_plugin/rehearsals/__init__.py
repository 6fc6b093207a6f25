"""Client rehearsals: run a user's client through each failure in `contracts/rehearsals/` and score it.

The user provides one fixture, `nanobanana_adapter`, returning a callable that runs one generation through
their client:

    @pytest.fixture
    def nanobanana_adapter():
        def adapter(sim, prompt, **options):          # options: images=N, callback_url=URL (when asked)
            client = MyClient(sim.api_key(), base_url=sim.base_url(), sleep=sim.sleep)
            return client.generate(prompt, **options)  # or AdapterResult(images=…, blocked=…, on_callback=…)
        return adapter

and `pytest --nanobanana-rehearse=PROVIDER` replaces the collected tests with one item per rehearsal. Each
item puts the rehearsal's scenario and fault rules in force on a freshly reset simulator, calls the adapter
once (an exception it raises is an outcome, not a crash), then judges what the client did from the journal
(requests, statuses, clock times, task IDs) and from the adapter's return value where the behaviour lives
only there (a partial batch's blocked image, which webhook deliveries were acted on). The end of the run
prints a scorecard: each rehearsal passed, failed (why, with a journal excerpt) or did not apply.

Modules: `files` (the rehearsal format), `guidance` (each provider's roles and pace), `adapter` (reading
what the adapter returns), `evidence` (what happened), `checks` (the expectations), `scorecard` (verdicts),
`runner` (the pytest wiring).
"""

from simulator.pytest_plugin.rehearsals.adapter import AdapterResult

__all__ = ["AdapterResult"]
