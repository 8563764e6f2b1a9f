"""Config files are checked for size and alias expansion before Hydra loads any of them.

Hydra reads each config file with OmegaConf.load (yaml.load with OmegaConf's SafeLoader): PyYAML shares an aliased
node instead of copying it, so a "billion laughs" file (ten aliases of ten aliases of ...) parses in
milliseconds, then OmegaConf turns the shared nodes into a tree and never finishes. `check_folders` runs first,
over every folder the composition can read (the shipped conf/, --config-dir, hydra.searchpath's file:// folders):
a file over MAX_BYTES, or whose aliases would expand it past MAX_NODES nodes, is refused (exit 2) with its path.
A file without an anchor (`&`) cannot hold an alias and is only read, so a run pays about a millisecond.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from planner.errors import ConfigError

MAX_BYTES = 256 * 1024  # the largest shipped config file is under 8 KB
MAX_ALIASES = 1_000
MAX_NODES = 100_000  # YAML nodes after every alias is expanded (a shipped file has a few hundred)
_SUFFIXES = (".yaml", ".yml")


def check_folders(folders: Iterable[str | os.PathLike[str] | None]) -> None:
    """Refuse the first config file under `folders` that is too large or expands too far (ConfigError)."""
    seen: set[str] = set()
    for folder in folders:
        if not folder or not os.path.isdir(folder):
            continue
        for path in _config_files(os.fspath(folder)):
            real = os.path.realpath(path)
            if real not in seen:
                seen.add(real)
                check_file(path)


def check_file(path: str) -> None:
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise _refuse(path, f"is {size // 1024:,} KB, over the {MAX_BYTES // 1024} KB a config file may have")
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return  # unreadable: Hydra reports it when (and if) the composition needs it
    if b"&" not in data or b"*" not in data:
        return
    aliases, nodes = _expansion(data)
    if aliases > MAX_ALIASES:
        raise _refuse(path, f"has {aliases:,} YAML aliases (*name), over the {MAX_ALIASES:,} allowed")
    if nodes > MAX_NODES:
        raise _refuse(
            path, f"expands its YAML aliases (*name) to {nodes:,} nodes or more, over the {MAX_NODES:,} allowed"
        )


def _config_files(folder: str) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(_SUFFIXES):
                yield os.path.join(root, name)


def _expansion(data: bytes) -> tuple[int, int]:
    """(alias count, node count once every alias is expanded; capped just past MAX_NODES). (0, 0) for text that
    is not YAML: Hydra reports that itself."""
    import yaml

    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        aliases = sum(isinstance(event, yaml.AliasEvent) for event in yaml.parse(data, Loader=loader_cls))
        if aliases == 0:
            return 0, 0
        nodes = list(yaml.compose_all(data, Loader=loader_cls))
    except yaml.YAMLError:
        return 0, 0
    memo: dict[int, int] = {}
    total = 0
    for node in nodes:
        total += _count(node, memo, set())
        if total > MAX_NODES:
            break
    return aliases, total


def _count(node: Any, memo: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes under `node` with aliases expanded; shared nodes are counted once per reference, computed once."""
    import yaml

    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_nodes:  # an alias inside its own anchor: infinite once expanded
        return MAX_NODES + 1
    open_nodes.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children: list[Any] = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _count(child, memo, open_nodes)
        if total > MAX_NODES:
            break
    open_nodes.discard(key)
    memo[key] = min(total, MAX_NODES + 1)
    return memo[key]


def _refuse(path: str, why: str) -> ConfigError:
    return ConfigError(
        f"config file {path} {why}",
        path=path,
        fix="remove the file from the config folders (conf/, --config-dir, hydra.searchpath), or write its values "
        "out: a config file is a few KB, with a few anchors at most",
    )


__all__ = ["MAX_ALIASES", "MAX_BYTES", "MAX_NODES", "check_file", "check_folders"]
