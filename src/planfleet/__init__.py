"""planfleet: execute multi-phase coding plans with a fleet of Claude Code agents."""

from __future__ import annotations

__version__ = "0.1.0"
