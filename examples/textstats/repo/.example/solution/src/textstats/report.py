"""Render a short report about a text."""

from textstats.counter import top
from textstats.tokenize import words


def report(text: str, n: int = 3) -> str:
    """Return a report: the word count and the ``n`` most common words."""
    ws = words(text)
    lines = [f"words: {len(ws)}"]
    lines += [f"{word}: {count}" for word, count in top(ws, n)]
    return "\n".join(lines)
