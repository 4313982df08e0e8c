"""A named registry: the one place an engine, a preset or a discovery example is added.

A :class:`Registry` is a dict (name → entry, in registration order) that refuses a second,
different entry under a taken name and looks names up with an error that lists the known
ones. CLI help, error messages and the tests parametrised over a registry read it, so adding
an entry is all it takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from rdlab.errors import RdlabError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """Entries of one ``kind`` by name; lookups of unknown names raise ``error``.

    Parameters
    ----------
    kind : str
        What the entries are, for messages (``"preset"``, ``"engine"``).
    error : type of RdlabError
        The error raised by :meth:`lookup` for an unknown name.
    entries : iterable of tuple of (str, T), default ()
        Initial ``(name, entry)`` pairs, added in order.
    sort_listing : bool, default True
        List the names sorted in messages; ``False`` keeps registration order.
    """

    def __init__(self, kind: str, error: type[RdlabError],
                 entries: Iterable[tuple[str, T]] = (), sort_listing: bool = True):
        super().__init__()
        self.kind = kind
        self.error = error
        self.sort_listing = sort_listing
        for name, entry in entries:
            self.add(name, entry)

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` as ``name``.

        The same entry again is a no-op.

        Parameters
        ----------
        name : str
            A non-empty name.
        entry : T
            The entry.

        Returns
        -------
        T
            The entry.

        Raises
        ------
        TypeError
            If ``name`` is not a non-empty string.
        ValueError
            If another entry is registered under ``name`` (a programming error, not a
            user's).
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} needs a name, got {name!r}")
        if name in self and self[name] is not entry:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self[name] = entry
        return entry

    def lookup(self, name: str) -> T:
        """Return the entry called ``name``.

        Parameters
        ----------
        name : str
            A registered name.

        Returns
        -------
        T
            The entry.

        Raises
        ------
        RdlabError
            This registry's ``error``, naming ``name`` and listing the known names.
        """
        try:
            return self[name]
        except (KeyError, TypeError):
            raise self.error(f"unknown {self.kind} {name!r}; {self.kind}s are "
                             f"{self.listing()}") from None

    def copy(self) -> Registry[T]:
        """Return a registry of the same kind with the same entries (e.g. for a test to extend)."""
        return Registry(self.kind, self.error, self.items(), self.sort_listing)

    def listing(self) -> list[str]:
        """Return the names for messages: sorted, or in registration order."""
        return sorted(self) if self.sort_listing else list(self)
