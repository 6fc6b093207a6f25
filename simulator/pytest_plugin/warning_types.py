"""What the plugin says without failing a test: pytest lists these in its warnings summary, and
`-W error::simulator.pytest_plugin.IgnoredFieldWarning` turns them into failures (as `--nanobanana-strict` does)."""

from __future__ import annotations


class IgnoredFieldWarning(UserWarning):
    """The client sent a field the provider does not document and silently drops: the request worked, but not
    as the client meant (Evolink answers 1:1 to an `aspect_ratio` it ignores; the field is `size`)."""
