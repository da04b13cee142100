"""Time-ordered ids made from ``now`` and a counter, so replaying a log rebuilds the same ids.

An id is 12 hex digits of milliseconds since the epoch followed by 8 hex digits of a counter
kept in the scheduler state (``"0197a3f2c1e0" + "0000002a"``). The millisecond part never goes
backwards (a clock step back reuses the last value) and the counter only grows, so sorting ids
as strings sorts them by creation. Workflow ids use the same scheme behind ``"wf_"``.

No randomness is involved in the master's ids, and a log replays into the very same ids. (ULIDs
would add 80 random bits we have no use for and would break exact replay.)

A client that submits through the durable intake makes its task's id itself, before the master
sees it: ``client_id`` gives the same 12 hex digits of its own clock's milliseconds, then ``-``
and a token unique to the client and call (``"0197a3f2c1e0-k2j4…"``). The ``-`` sorts before
every hex digit, so such an id sorts among the master's ids by its millisecond (as far as the
clocks agree), and never equals one. The id travels in the intake entry and then in the log, so
replay is exact all the same; the generator learns nothing from it.
"""

from __future__ import annotations

__all__ = ["CLIENT_MARK", "WORKFLOW_PREFIX", "IdGenerator", "client_id", "client_id_ms"]

WORKFLOW_PREFIX = "wf_"
_MS_DIGITS = 12
_MAX_MS = 16**_MS_DIGITS - 1
#: What follows the milliseconds in a client-made id.
CLIENT_MARK = "-"
_TOKEN_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
#: Longest token a client-made id may carry.
MAX_TOKEN = 40


def client_id(now: float, token: str) -> str:
    """A client-made task id: the milliseconds of ``now`` and the client's unique ``token``."""
    ms = min(max(int(now * 1000.0), 0), _MAX_MS)
    return f"{ms:012x}{CLIENT_MARK}{token}"


def client_id_ms(ident: object) -> int | None:
    """The milliseconds of a well-formed client-made id, or None for anything else."""
    if not isinstance(ident, str) or len(ident) > _MS_DIGITS + 1 + MAX_TOKEN:
        return None
    if len(ident) < _MS_DIGITS + 2 or ident[_MS_DIGITS] != CLIENT_MARK:
        return None
    token = ident[_MS_DIGITS + 1 :]
    if not _TOKEN_CHARS.issuperset(token):
        return None
    try:
        return int(ident[:_MS_DIGITS], 16)
    except ValueError:
        return None


class IdGenerator:
    """Hands out ids; ``observe`` replays an id seen in an event so the next one stays unique."""

    __slots__ = ("_ms_text", "_text_ms", "counter", "last_id", "last_ms")

    def __init__(self, last_ms: int = 0, counter: int = 0) -> None:
        self.last_ms = last_ms
        self.counter = counter
        #: The id handed out last, so ``observe`` of the id just made (the live path) is free.
        self.last_id = ""
        # The formatted millisecond part, reused while the millisecond does not change.
        self._text_ms = -1
        self._ms_text = ""

    def next(self, now: float, prefix: str = "") -> str:
        ms = int(now * 1000.0) if now > 0 else 0
        if ms < self.last_ms:
            ms = self.last_ms
        if ms > _MAX_MS:
            ms = _MAX_MS
        self.last_ms = ms
        if ms != self._text_ms:
            self._text_ms = ms
            self._ms_text = f"{ms:012x}"
        self.counter += 1
        # 8 digits cover 2**32 ids per log; past that the id grows a digit and stays unique, but
        # string order then holds only between different milliseconds.
        ident = self.last_id = f"{prefix}{self._ms_text}{self.counter:08x}"
        return ident

    def next_many(self, now: float, n: int) -> list[str]:
        """``n`` ids at once, as ``n`` calls of ``next(now)`` would make them."""
        if n <= 0:
            return []
        first = self.next(now)
        if n == 1:
            return [first]
        start = self.counter
        ms_text = self._ms_text
        out = [first]
        out += [f"{ms_text}{c:08x}" for c in range(start + 1, start + n)]
        self.counter = start + n - 1
        self.last_id = out[-1]
        return out

    def observe(self, ident: str) -> None:
        """Advance past an id produced elsewhere (replay of an event)."""
        last = self.last_id
        if ident <= last and len(ident) == len(last):
            return  # made here, at or before the last id: nothing to learn
        body = ident[len(WORKFLOW_PREFIX) :] if ident.startswith(WORKFLOW_PREFIX) else ident
        if body[_MS_DIGITS : _MS_DIGITS + 1] == CLIENT_MARK:
            # Made by a client, on its own clock: nothing to learn (a clock far ahead must
            # not drag the master's ids along).
            return
        try:
            ms = int(body[:_MS_DIGITS], 16)
            counter = int(body[_MS_DIGITS:], 16)
        except ValueError:
            return
        if ms > self.last_ms:
            self.last_ms = ms
        if counter > self.counter:
            self.counter = counter
