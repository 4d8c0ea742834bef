"""Errors of asking an export what it cannot answer: ids it does not hold, requests without
text (light: the entry points import it)."""

from __future__ import annotations


class UnknownIdError(KeyError):
    """An id that the export does not hold; the message says which and what to do instead."""

    def __str__(self) -> str:
        # KeyError's own str() is the repr of its argument, which wraps the message in quotes.
        return str(self.args[0]) if self.args else ""


class UnknownUserError(UnknownIdError):
    """The user id is not in the export (new users are asked for by their reviews). The message
    may name other users (for the operator at a command line); ``user_id`` is the id asked for
    alone, for an answer to a client, which must not learn other users' ids."""

    def __init__(self, message: str, user_id: object = None) -> None:
        super().__init__(message)
        self.user_id = user_id


class UnknownItemError(UnknownIdError):
    """An item id that is not in the export's catalog."""


class InvalidRequestError(ValueError):
    """A request that cannot be answered as given (no reviews, a blank text); the message says why."""
