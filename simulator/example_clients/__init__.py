"""Example clients of every provider, shipped so that the README's rehearsal examples run from a plain install.

One careful client per provider, written from that provider's own documentation the way a production
integration would be (`civitai`, `qingbo`, `runware`, `crun`, `foxapi`, `evolink`, on `common`), the naive
ones the rehearsals should catch (`naive`), and ready-made rehearsal adapters around both (`adapters`). The
clients use only httpx and the standard library: copy one with `common.py` to start your own. See README.md
beside this file.
"""
