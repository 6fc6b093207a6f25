"""The web inspector at /_sim/ui: what a client did, shown from the journal, tasks, wallets and rules.

- `records`: the JSON views (timelines, gallery, webhooks, ledger, windows, a whole session) the control plane
  serves, so a script reads everything the page shows;
- `stream`: the live journal as Server-Sent Events; `masking`: credentials masked wherever they are shown;
- `routes`: those routes, and the page's own files (`static/`: plain ES modules, no build step).
"""
