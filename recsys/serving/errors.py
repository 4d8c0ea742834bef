"""Errors of asking an export what it cannot answer: ids it does not hold, requests without
text (light: the entry points import it)."""

from __future__ import annotations


class UnknownIdError(KeyError):
    """An id that the export does not hold; the message says which and what to do instead."""

    def __str__(self) -> str:
        # KeyError's own str() is the repr of its argument, which wraps the message in quotes.
        return str(self.args[0]) if self.args else ""


class UnknownUserError(UnknownIdError):
    """The user id is not in the export (new users are asked for by their reviews)."""


class UnknownItemError(UnknownIdError):
    """An item id that is not in the export's catalog."""


class InvalidRequestError(ValueError):
    """A request that cannot be answered as given (no reviews, a blank text); the message says why."""
