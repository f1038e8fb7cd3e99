"""Count how often each word occurs."""

from collections import Counter


def top(words: list[str], n: int = 3) -> list[tuple[str, int]]:
    """Return the ``n`` most common words with their counts (ties in first-seen order)."""
    return Counter(words).most_common(n)
