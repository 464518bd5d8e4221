"""Errors raised by the store when it cannot do what was asked."""


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message says what was expected, what was found,
    and what to do."""


class StoreBusy(StoreError):
    """Another process held a lock the operation needed for too long; trying again later may work."""
