"""Where a finding's key is set: the head's conf/ file and line that GitHub annotations point at.

Locator maps a finding's key path (`method.learning_rate`) to the goal file, the picked option's
file (conf/method/lora.yaml) or the defaults-list line that picks it, preferring a line the change
touched; find_key and find_default read YAML by indentation, line by line (best effort: no YAML
parser keeps line numbers for keys). annotate() turns a goal's new findings and risks into
GitHub workflow commands at those places.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from planner.diff_records import Annotation, Risk
from schemas.plan import Finding
from schemas.spec import Spec


@dataclass
class Locator:
    """Maps a finding's key path to the file and line of the head's conf/ that sets it (best effort)."""

    goal: str = ""
    conf: Path | None = None  # the head's conf/ folder (None: the head is a plan.json)
    conf_rel: str = "conf"  # that folder relative to the repository root, as annotations name files
    base_conf: Path | None = None  # the base's, to prefer lines the change touched
    spec: Spec | None = None  # the head's spec: which option of each group it picked

    def goal_file(self) -> tuple[str | None, int | None]:
        rel = f"goal/{self.goal}.yaml"
        if self.conf is None or not (self.conf / rel).is_file():
            return None, None
        lines = sorted(self._changed(rel))
        return f"{self.conf_rel}/{rel}", lines[0] if lines else 1

    def __call__(self, key_path: str) -> tuple[str | None, int | None]:
        if self.conf is None or self.spec is None:
            return None, None
        parts = [re.sub(r"\[.*\]$", "", p) for p in key_path.split(".") if p]
        group = parts[0] if parts else ""
        goal_rel = f"goal/{self.goal}.yaml"
        option_rel, rest = self._option_file(parts)
        candidates: list[tuple[str, int]] = []  # best first
        exact = find_key(self._text(goal_rel), parts)
        if exact and exact[1] == len(parts):
            candidates.append((goal_rel, exact[0]))
        if option_rel:
            found = find_key(self._text(option_rel), rest) if rest else None
            if found and found[1] == len(rest):
                candidates.append((option_rel, found[0]))
        for rel in (goal_rel, "config.yaml"):
            line = find_default(self._text(rel), group)
            if line:
                candidates.append((rel, line))
        if option_rel:  # the option's file: where the key sits, else its first changed line
            found = find_key(self._text(option_rel), rest) if rest else None
            changed = sorted(self._changed(option_rel))
            candidates.append((option_rel, found[0] if found else changed[0] if changed else 1))
        if exact:
            candidates.append((goal_rel, exact[0]))
        if not candidates:
            return self.goal_file()
        rel, line = next(((r, n) for r, n in candidates if n in self._changed(r)), candidates[0])
        return f"{self.conf_rel}/{rel}", line

    def _option_file(self, parts: list[str]) -> tuple[str | None, list[str]]:
        spec, conf = self.spec, self.conf
        assert spec is not None and conf is not None
        if not parts:
            return None, []
        group, rest = parts[0], parts[1:]
        if group == "inventory" and rest[:1] == ["gpu"]:
            group, name, rest = "gpu", spec.inventory.gpu.name, rest[1:]
        else:
            name = {
                "model": spec.model.name,
                "data": spec.data.name,
                "inventory": spec.inventory.name,
                "method": spec.method.kind,
                "launcher": spec.launcher.kind,
            }.get(group, "")
        if name and (conf / group / f"{name}.yaml").is_file():
            return f"{group}/{name}.yaml", rest
        folder = conf / group
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() and group != "goal" else []:
            found = find_key(path.read_text(encoding="utf-8"), rest)
            if found and found[1] == len(rest):
                return f"{group}/{path.name}", rest
        return None, rest

    def _text(self, rel: str) -> str:
        path = self.conf / rel if self.conf is not None else None
        return path.read_text(encoding="utf-8") if path is not None and path.is_file() else ""

    def _changed(self, rel: str) -> set[int]:
        """Line numbers of the head's file that differ from the base's (all, for a new file)."""
        if self.base_conf is None:
            return set()
        old_path = self.base_conf / rel
        new = self._text(rel).splitlines()
        if not old_path.is_file():
            return set(range(1, len(new) + 1))
        old = old_path.read_text(encoding="utf-8").splitlines()
        out: set[int] = set()
        for tag, _, _, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
            if tag in ("replace", "insert"):
                out.update(range(j1 + 1, j2 + 1))
        return out


_KEY_LINE = re.compile(r"^(\s*)(?:-\s+)?([A-Za-z_][\w.\-]*)\s*:(?:\s|$)")


def find_key(text: str, parts: Sequence[str]) -> tuple[int, int] | None:
    """(line, how many leading parts matched) of the deepest YAML key on the path `parts`."""
    stack: list[tuple[int, str]] = []
    best: tuple[int, int] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _KEY_LINE.match(line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent = len(match.group(1)) + (2 if line.lstrip().startswith("-") else 0)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        path = [k for _, k in stack]
        depth = len(path) if path == list(parts[: len(path)]) else 0
        if depth and (best is None or depth > best[1]):
            best = (number, depth)
            if depth == len(parts):
                return best
    return best


def find_default(text: str, group: str) -> int | None:
    """The defaults-list line that picks the option of `group` (`- override /model: ...`, `- model: ...`)."""
    if not group:
        return None
    pattern = re.compile(rf"^\s*-\s+(?:override\s+)?/?{re.escape(group)}(?:@[\w.]+)?\s*:")
    return next((n for n, line in enumerate(text.splitlines(), start=1) if pattern.match(line)), None)


def annotate(goal: str, added: list[Finding], found_risks: list[Risk], locate: Locator) -> list[Annotation]:
    level = {"error": "error", "warning": "warning", "info": "notice"}
    out = []
    for f in added:
        file, line = locate(f.path)
        fix = f" Fix: {f.fix}" if f.fix else ""
        out.append(
            Annotation(
                level[f.severity], f"plan diff: {goal}: {f.code}", f"{f.message} (key {f.path}).{fix}", file, line
            )
        )
    file, line = locate.goal_file()
    out += [
        Annotation("warning", f"plan risk: {goal}: {r.kind}", r.message, file, line)
        for r in found_risks
        if r.kind != "new-error"
    ]
    return out
