"""The one error type a user sees for a bad configuration (exit 2, no traceback)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from planner.printable import printable


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
        return printable("\n".join(lines))

    def summary(self) -> str:
        """One line: the message and its first problem (a sweep's table cell)."""
        return "; ".join([self.message, *self.problems[:1]])


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """' Did you mean 'epochs'?' or '' when nothing is close."""
    close = difflib.get_close_matches(word, [o for o in options if o != word], n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


# errno name -> (what happened, what to do); {path} is the path the system named.
_OS_FIXES = {
    "ENAMETOOLONG": ("a name in {path} is longer than the file system allows", "choose a shorter out_dir"),
    "ENOTDIR": ("{file} is a file, so nothing can be written below it", "pick another out_dir, or move the file"),
    "EEXIST": ("{path} exists and is not a folder", "pick another out_dir, or move that file"),
    "EACCES": ("no permission to write {path}", "pick an out_dir you can write (out_dir=$HOME/runs) or fix its rights"),
    "EPERM": ("no permission to write {path}", "pick an out_dir you can write (out_dir=$HOME/runs) or fix its rights"),
    "EROFS": ("{path} is on a read-only file system", "pick an out_dir on a writable disk"),
    "ENOSPC": ("the disk holding {path} is full", "free space there, or pick an out_dir on another disk"),
    "EDQUOT": ("the disk quota for {path} is used up", "free space there, or pick an out_dir on another disk"),
}


def os_error(exc: OSError, action: str, path: object) -> ConfigError:
    """An OSError while writing (permissions, name too long, a file where a folder goes, disk full) as a clear
    error naming the path and the fix; `action` says what was being done ("write the bundle")."""
    import errno
    from pathlib import Path

    named = Path(str(exc.filename)) if exc.filename else Path(str(path))
    code = errno.errorcode.get(exc.errno or 0, "")
    file = next((str(p) for p in [named, *named.parents] if p.is_file()), str(named))
    what, fix = _OS_FIXES.get(code, (f"{exc.strerror or exc} ({code or type(exc).__name__})", "check the path"))
    return ConfigError(f"cannot {action}: {what.format(path=named, file=file)}", path="out_dir", fix=fix)
