"""Credit balances per provider and API key, in each provider's own unit (Buzz, credits, USD)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulator import checks

# The ledger keeps the latest movements only, like the journal: a soak cannot grow it without bound.
LEDGER_CAPACITY = 10_000
# A trillion of any provider's unit is more than any test needs, and keeps every sum exact and printable.
MAX_BALANCE = 1e12


def check_balance(value: object, field: str = "balance") -> float:
    """A balance a wallet can hold: a finite number from 0 up to MAX_BALANCE (refused otherwise, naming `field`)."""
    return float(checks.number(value, field, low=0, high=MAX_BALANCE, unit="in the provider's own unit"))


@dataclass
class Wallet:
    balance: float


class Wallets:
    """Balances, and a ledger of every movement (debit, credit, balance set) on the clock, linked to its task."""

    def __init__(self, default_balance: float = 1_000_000.0, now: Callable[[], float] = lambda: 0.0,
                 ledger_capacity: int = LEDGER_CAPACITY) -> None:
        self.default_balance = default_balance
        self._now = now
        self._wallets: dict[tuple[str, str], Wallet] = {}
        self._defaults: dict[str, float] = {}
        self._ledger: deque[dict[str, Any]] = deque(maxlen=ledger_capacity)
        self._moves = 0
        self._latest: dict[tuple[str, str], dict[str, Any]] = {}  # each wallet's latest movement, for `link`

    def _move(self, kind: str, provider: str, owner: str, amount: float, task_id: str | None) -> None:
        self._moves += 1
        move = {"seq": self._moves, "at": self._now(), "provider": provider, "owner": owner, "kind": kind,
                "amount": amount, "balance": self.balance(provider, owner), "task_id": task_id}
        self._ledger.append(move)
        self._latest[(provider, owner)] = move

    def set_default(self, provider: str, balance: float) -> None:
        self._defaults[provider] = check_balance(balance)

    def clear_defaults(self) -> None:
        self._defaults.clear()

    def wallet(self, provider: str, owner: str) -> Wallet:
        key = (provider, owner)
        if key not in self._wallets:
            self._wallets[key] = Wallet(self._defaults.get(provider, self.default_balance))
        return self._wallets[key]

    def balance(self, provider: str, owner: str) -> float:
        return self.wallet(provider, owner).balance

    def set_balance(self, provider: str, owner: str, balance: float) -> None:
        checked = check_balance(balance)  # before the wallet is made: a refused balance leaves no trace
        self.wallet(provider, owner).balance = checked
        self._move("set", provider, owner, checked, None)

    def can_pay(self, provider: str, owner: str, amount: float) -> bool:
        return self.balance(provider, owner) >= amount

    def debit(self, provider: str, owner: str, amount: float) -> bool:
        wallet = self.wallet(provider, owner)
        if wallet.balance < amount:
            return False
        wallet.balance -= amount
        # The task does not exist yet when it is paid for: `link` names it once the engine adds it.
        self._move("debit", provider, owner, amount, None)
        return True

    def credit(self, provider: str, owner: str, amount: float, task_id: str | None = None) -> None:
        self.wallet(provider, owner).balance += amount
        self._move("credit", provider, owner, amount, task_id)

    def link(self, provider: str, owner: str, task_id: str) -> None:
        """Name the task the wallet's latest unlinked debit paid for (a provider debits, then adds the task, with
        nothing in between): one lookup, however long the ledger."""
        move = self._latest.get((provider, owner))
        if move is not None and move["kind"] == "debit" and move["task_id"] is None:
            move["task_id"] = task_id

    def ledger(self, provider: str | None = None, owner: str | None = None) -> list[dict[str, Any]]:
        """Every movement kept, oldest first (copies: a reader cannot change the ledger)."""
        return [dict(m) for m in self._ledger
                if (provider is None or m["provider"] == provider) and (owner is None or m["owner"] == owner)]

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {"provider": provider, "owner": owner, "balance": wallet.balance}
            for (provider, owner), wallet in sorted(self._wallets.items())
        ]
