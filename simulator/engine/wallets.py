"""Credit balances per provider and API key, in each provider's own unit (Buzz, credits, USD)."""

from __future__ import annotations

from dataclasses import dataclass

from simulator import checks

# A trillion of any provider's unit is more than any test needs, and keeps every sum exact and printable.
MAX_BALANCE = 1e12


def check_balance(value: object, field: str = "balance") -> float:
    """A balance a wallet can hold: a finite number from 0 up to MAX_BALANCE (refused otherwise, naming `field`)."""
    return float(checks.number(value, field, low=0, high=MAX_BALANCE, unit="in the provider's own unit"))


@dataclass
class Wallet:
    balance: float


class Wallets:
    def __init__(self, default_balance: float = 1_000_000.0) -> None:
        self.default_balance = default_balance
        self._wallets: dict[tuple[str, str], Wallet] = {}
        self._defaults: dict[str, float] = {}

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

    def can_pay(self, provider: str, owner: str, amount: float) -> bool:
        return self.balance(provider, owner) >= amount

    def debit(self, provider: str, owner: str, amount: float) -> bool:
        wallet = self.wallet(provider, owner)
        if wallet.balance < amount:
            return False
        wallet.balance -= amount
        return True

    def credit(self, provider: str, owner: str, amount: float) -> None:
        self.wallet(provider, owner).balance += amount

    def snapshot(self) -> list[dict[str, object]]:
        return [
            {"provider": provider, "owner": owner, "balance": wallet.balance}
            for (provider, owner), wallet in sorted(self._wallets.items())
        ]
