"""The one error type a user sees for a bad configuration (exit 2, no traceback)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(Exception):
    """What is wrong, where (file or key path), and what to do."""

    def __init__(self, message: str, *, path: str = "", fix: str = "", problems: Iterable[str] = ()):
        self.message = message
        self.path = path
        self.fix = fix
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"error: {self.message}"]
        if self.path:
            lines.append(f"  at: {self.path}")
        lines.extend(f"  - {p}" for p in self.problems)
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: the message and its first problem (a sweep's table cell)."""
        return "; ".join([self.message, *self.problems[:1]])


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """' Did you mean 'epochs'?' or '' when nothing is close."""
    close = difflib.get_close_matches(word, [o for o in options if o != word], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
