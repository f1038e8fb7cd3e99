"""Split text into lowercase words."""

import re

_WORD = re.compile(r"[A-Za-z0-9']+")


def words(text: str) -> list[str]:
    """Return the words of ``text`` in order, lowercased, without punctuation."""
    return [w.lower().strip("'") for w in _WORD.findall(text) if w.strip("'")]
