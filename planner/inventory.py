"""`python -m planner.inventory --from-slurm`: write an inventory (conf/inventory/ format) from what Slurm says.

    python -m planner.inventory --from-slurm [--partition P] [--name N] [--gpu CATALOG_NAME] [-o FILE]

One command reads the cluster: `sinfo --noheader --Node --format=<SINFO_FORMAT>`, one line per node and
partition. Everything after it is pure: `parse_sinfo(text)` turns the text into rows, `build(rows, ...)` picks
the partition's nodes and maps their GRES GPU type to the GPU catalog (conf/gpu/) through the alias table
conf/slurm_gres.yaml, and `to_yaml` writes the file. Unit tests feed them sinfo text captured on a real cluster.

Choices, said in the file's header and on stderr when they apply:
* No --partition: the default partition (sinfo marks it with '*').
* Heterogeneous partition: an inventory is nodes x GPUs of one type, so the largest group of nodes with the
  same GPU type and count is used (ties: more GPUs, then the first node name); nodes without GPUs are left
  out of a partition that has GPU nodes. CPUs and memory per node are the smallest in the group, so a job
  sized from the inventory fits on any of its nodes. Every node left out is named.
* Every node of the partition counts, whatever its state now (down and drained ones are named): the
  inventory is what the partition holds, not what is free this minute.
* Nodes without GPUs: a CPU inventory (gpu: cpu, one training process per node), like conf/inventory/local.yaml.
* The partition's MaxTime is time_limit_hours (infinite: null). Price and account are not in sinfo: null.

Exit codes: 0 written; 2 not written (sinfo missing or failing, unknown GPU type, ...): a message naming
what is wrong and what to do, no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from planner.errors import ConfigError
from planner.paths import conf_dir
from schemas.inventory import Inventory

# node | partition (default marked '*') | CPUs | memory (MB) | GRES | compact state | partition time limit
SINFO_FORMAT = "%N|%P|%c|%m|%G|%t|%l"
SINFO_ARGV = ("sinfo", "--noheader", "--Node", f"--format={SINFO_FORMAT}")
ALIASES_FILE = "slurm_gres.yaml"
SINFO_TIMEOUT_S = 30
# Compact states in which a node takes jobs now; anything else (down, drain, unk, a '*' not responding, ...)
# is named in the notes.
_USABLE = {"idle", "mix", "alloc", "comp", "resv", "plnd"}
_GPU_GRES = re.compile(r"^gpu(?::(?P<type>[^:(]+))?:(?P<count>\d+)(?:\(.*\))?$")


@dataclass(frozen=True)
class NodeRow:
    """One line of sinfo: a node as one partition sees it."""

    node: str
    partition: str
    default: bool
    cpus: int
    memory_mb: int
    gres: str
    state: str
    time_limit_hours: float | None


@dataclass(frozen=True)
class Generated:
    """The inventory fields, the header comment lines of the file, and the notes for stderr."""

    fields: dict[str, Any]
    gpu: str
    header: list[str]
    notes: list[str] = field(default_factory=list)


# --- parsing sinfo ------------------------------------------------------------------------------------


def parse_sinfo(text: str) -> list[NodeRow]:
    """Rows of `sinfo --noheader --Node --format=SINFO_FORMAT`; a malformed line is a ConfigError."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split("|")
        if len(parts) != 7 or not parts[2].isdigit() or not parts[3].rstrip("+").isdigit():
            raise ConfigError(
                f"cannot read line {number} of sinfo's output: {line.strip()!r}",
                fix=f"expected 'node|partition|cpus|memory_mb|gres|state|timelimit' ({' '.join(SINFO_ARGV)})",
            )
        node, partition, cpus, memory, gres, state, limit = parts
        rows.append(
            NodeRow(
                node=node,
                partition=partition.rstrip("*"),
                default=partition.endswith("*"),
                cpus=int(cpus),
                memory_mb=int(memory.rstrip("+")),
                gres=gres,
                state=state,
                time_limit_hours=parse_time_limit(limit),
            )
        )
    return rows


def parse_time_limit(text: str) -> float | None:
    """Hours from a Slurm time limit ('infinite', 'days-hh:mm:ss', 'hh:mm:ss', 'mm:ss', 'mm'); None: no limit."""
    text = text.strip().lower()
    if text in {"infinite", "unlimited", "n/a", "none", ""}:
        return None
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise ConfigError(f"cannot read the time limit {text!r} from sinfo", fix="expected days-hh:mm:ss or infinite")
    days, first, second, third = (int(g) if g else 0 for g in match.groups())
    if match.group(4) is not None:  # [d-]hh:mm:ss
        hours, minutes, seconds = first, second, third
    elif match.group(1) is not None:  # d-hh or d-hh:mm
        hours, minutes, seconds = first, second, 0
    elif match.group(3) is not None:  # mm:ss
        hours, minutes, seconds = 0, first, second
    else:  # mm
        hours, minutes, seconds = 0, first, 0
    return round(days * 24 + hours + minutes / 60 + seconds / 3600, 4)


def gpus_of(gres: str) -> dict[str, int]:
    """GPU counts by GRES type ('' when untyped) from a GRES string such as 'gpu:h100:8(S:0-1),shard:8'."""
    counts: dict[str, int] = {}
    if gres.strip() in {"", "(null)"}:
        return counts
    for item in re.split(r",(?![^(]*\))", gres):  # commas outside the '(S:0-1)' socket lists
        match = _GPU_GRES.match(item.strip())
        if match:
            kind = (match.group("type") or "").lower()
            counts[kind] = counts.get(kind, 0) + int(match.group("count"))
    return counts


# --- from rows to an inventory -----------------------------------------------------------------------


def catalog_name(gres_type: str, where: str, aliases: Mapping[str, Any], catalog: Mapping[str, Any]) -> str:
    """The conf/gpu/ entry for a GRES type, through the alias table; ConfigError when unknown or ambiguous."""
    if gres_type in catalog:
        return gres_type
    target = {str(k).lower(): v for k, v in aliases.items()}.get(gres_type)
    if isinstance(target, str) and target in catalog:
        return target
    if isinstance(target, list):
        raise ConfigError(
            f"GRES type '{gres_type}' on {where} may be any of {', '.join(target)}: Slurm does not say which",
            fix=f"pass --gpu <name> ({' or '.join(target)})",
        )
    if target is not None:
        raise ConfigError(
            f"conf/{ALIASES_FILE} maps GRES type '{gres_type}' to '{target}', which is not in the GPU catalog",
            fix=f"map it to one of: {', '.join(sorted(catalog))}",
        )
    raise ConfigError(
        f"GRES type '{gres_type}' on {where} is not in the GPU catalog",
        fix=f"add conf/gpu/{gres_type}.yaml (see conf/gpu/h100-sxm.yaml for the fields), or map it to a catalog "
        f"entry with a line `{gres_type}: <name>` in conf/{ALIASES_FILE}, or pass --gpu <name>; "
        f"catalog: {', '.join(sorted(catalog))}",
    )


def _names(nodes: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(nodes[:limit])
    return shown if len(nodes) <= limit else f"{shown}, ... ({len(nodes) - limit} more)"


def _node_gpu(
    row: NodeRow, where: str, gpu: str | None, aliases: Mapping[str, Any], catalog: Mapping[str, Any]
) -> tuple[str, int]:
    """(catalog name, count) of a node's GPUs; ('cpu', 0) without any."""
    counts = gpus_of(row.gres)
    total = sum(counts.values())
    if not total:
        return "cpu", 0
    if gpu is not None:
        return gpu, total
    if len(counts) > 1:
        raise ConfigError(
            f"node {row.node} on {where} has GPUs of more than one GRES type ({row.gres}); "
            "an inventory has one GPU type per node",
            fix="pass --gpu <name> to count them all as that catalog entry",
        )
    (kind,) = counts
    if not kind:
        raise ConfigError(
            f"the GPUs of node {row.node} on {where} have no GRES type ({row.gres}): Slurm does not say which GPU",
            fix=f"pass --gpu <name>, one of: {', '.join(sorted(n for n in catalog if n != 'cpu'))}",
        )
    return catalog_name(kind, where, aliases, catalog), total


def build(
    rows: Sequence[NodeRow],
    *,
    partition: str | None,
    name: str | None,
    aliases: Mapping[str, Any],
    catalog: Mapping[str, Mapping[str, Any]],
    gpu: str | None = None,
) -> Generated:
    """The inventory of one partition (pure). `catalog`: conf/gpu/ entries by name; `aliases`: conf/slurm_gres.yaml."""
    partitions = sorted({r.partition for r in rows})
    if not rows:
        raise ConfigError("sinfo lists no nodes", fix="check the cluster with `sinfo -N`")
    if partition is None:
        defaults = sorted({r.partition for r in rows if r.default})
        if not defaults:
            raise ConfigError(
                "the cluster has no default partition", fix=f"pass --partition, one of: {', '.join(partitions)}"
            )
        partition = defaults[0]
    if partition not in partitions:
        raise ConfigError(
            f"no partition '{partition}' in sinfo", fix=f"pass --partition, one of: {', '.join(partitions)}"
        )
    if gpu is not None and gpu not in catalog:
        raise ConfigError(
            f"--gpu {gpu} is not in the GPU catalog (conf/gpu/)", fix=f"one of: {', '.join(sorted(catalog))}"
        )
    where = f"partition {partition}"
    members = sorted((r for r in rows if r.partition == partition), key=lambda r: r.node)
    shapes = {r.node: _node_gpu(r, where, gpu, aliases, catalog) for r in members}

    groups: dict[tuple[str, int], list[NodeRow]] = {}
    for row in members:
        groups.setdefault(shapes[row.node], []).append(row)
    has_gpus = any(count for _, count in groups)
    candidates = {k: v for k, v in groups.items() if k[1] or not has_gpus}
    # max() keeps the first of equals: groups are in the order of their first node's name
    (kind, count), chosen = max(candidates.items(), key=lambda kv: (len(kv[1]), kv[0][1]))
    chosen_names = [r.node for r in chosen]
    notes = []
    left_out = [r for r in members if r.node not in chosen_names]
    if left_out:
        shown = "; ".join(f"{r.node} ({_shape(*shapes[r.node])})" for r in left_out[:8])
        more = f"; ... ({len(left_out) - 8} more)" if len(left_out) > 8 else ""
        notes.append(
            f"{where} is heterogeneous: this inventory is its {len(chosen)} node(s) with {_shape(kind, count)}; "
            f"left out: {shown}{more}"
        )
    cpus = min(r.cpus for r in chosen)
    memory_mb = min(r.memory_mb for r in chosen)
    if len({(r.cpus, r.memory_mb) for r in chosen}) > 1:
        notes.append(
            "the nodes differ in CPUs or memory: cpus_per_node and memory_per_node_gb are the smallest "
            f"({cpus} CPUs, {memory_mb} MB)"
        )
    if memory_mb < 1024:
        notes.append(f"RealMemory is {memory_mb} MB (not set in slurm.conf?): set memory_per_node_gb by hand")
    down = [f"{r.node} ({r.state})" for r in chosen if r.state not in _USABLE]
    if down:
        notes.append(f"not taking jobs now, counted all the same: {_names(down)}")
    fields: dict[str, Any] = {
        "name": name or f"slurm-{partition}",
        "nodes": len(chosen),
        "gpus_per_node": count or 1,  # a CPU node: one training process, like conf/inventory/local.yaml
        "cpus_per_node": cpus,
        "memory_per_node_gb": max(0.1, math.floor(memory_mb * 2**20 / 1e8) / 10),  # Slurm's MB are MiB; GB 10^9
        "scheduler": "slurm",
        "partition": partition,
        "account": None,
        "time_limit_hours": chosen[0].time_limit_hours,  # the partition's MaxTime: the same on every row
        "price_per_gpu_hour": None,
    }
    try:
        Inventory.model_validate({**fields, "gpu": dict(catalog[kind])})
    except ValidationError as exc:
        raise ConfigError(
            f"the inventory read from {where} is not valid: {exc.errors()[0]['msg']}",
            path=".".join(str(p) for p in exc.errors()[0]["loc"]),
            fix="a bad name: pass --name <letters, digits, '.', '_', '-'>; else check the partition in slurm.conf",
        ) from None
    types = sorted({t or "(untyped)" for r in chosen for t in gpus_of(r.gres)})
    what = (
        f"{count} GPUs of GRES type {', '.join(types)} (conf/gpu/{kind}.yaml)" if count else "no GPUs: a CPU inventory"
    )
    header = [
        f"Read with sinfo from {where}: {len(chosen)} node(s) ({_names(chosen_names)}), each with {what}, "
        f"{cpus} CPUs and {memory_mb} MB of RealMemory.",
        *notes,
        "price_per_gpu_hour and account are not in sinfo: set them by hand.",
    ]
    return Generated(fields=fields, gpu=kind, header=header, notes=notes)


def _shape(kind: str, count: int) -> str:
    return f"{count} x {kind}" if count else "no GPUs"


def to_yaml(generated: Generated, command: str) -> str:
    """The file, in the shape of conf/inventory/*.yaml: header comments, the /gpu default, the fields."""
    comments = [f"Generated by `{command}`.", *generated.header]
    lines = [
        wrapped
        for line in comments
        for wrapped in textwrap.wrap(line, 116, initial_indent="# ", subsequent_indent="#   ")
    ]
    lines += ["defaults:", f"  - /gpu@gpu: {generated.gpu}", "  - _self_"]
    lines += [f"{key}: {_scalar(value)}" for key, value in generated.fields.items()]
    return "\n".join(lines) + "\n"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):  # quoted only where YAML would read something else (a name like 'true')
        return value if yaml.safe_load(value) == value else json.dumps(value)
    return str(value)


# --- I/O: the edges ------------------------------------------------------------------------------------


def read_sinfo(sinfo: str = "sinfo") -> str:
    """sinfo's text, or a ConfigError saying why there is none."""
    argv = [sinfo, *SINFO_ARGV[1:]]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=SINFO_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise ConfigError(
            f"{sinfo} not found: --from-slurm reads the cluster with sinfo",
            fix="run this on a node of the cluster (a login node) with the Slurm client installed",
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"sinfo did not answer within {SINFO_TIMEOUT_S}s", fix="check the controller: scontrol ping"
        ) from None
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip() or "(nothing on stderr)"
        raise ConfigError(
            f"{' '.join(argv)} failed (exit {proc.returncode}): {said}", fix="check the controller: scontrol ping"
        )
    return proc.stdout


def load_tables(conf: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The alias table (conf/slurm_gres.yaml) and the GPU catalog (conf/gpu/*.yaml, by file name)."""
    aliases = yaml.safe_load((conf / ALIASES_FILE).read_text(encoding="utf-8")) or {}
    catalog = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted((conf / "gpu").glob("*.yaml"))}
    return aliases, catalog


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m planner.inventory",
        description="Write an inventory (the conf/inventory/ format) from the cluster this runs on.",
        epilog="Use it: write it to <team-conf>/inventory/<name>.yaml and plan with inventory=<name> "
        '"hydra.searchpath=[file://<team-conf>]". Exit 0: written; 2: not written (the message says why).',
    )
    parser.add_argument("--from-slurm", action="store_true", required=True, help="read the nodes with sinfo")
    parser.add_argument("--partition", help="the partition to describe (default: the cluster's default partition)")
    parser.add_argument("--name", help="the inventory's name (default: the -o file's name, else slurm-<partition>)")
    parser.add_argument("--gpu", help="the conf/gpu/ entry of the partition's GPUs, whatever their GRES type says")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = "python -m planner.inventory --from-slurm" + "".join(
        f" --{key} {value}"
        for key, value in (("partition", args.partition), ("name", args.name), ("gpu", args.gpu))
        if value
    )
    try:
        aliases, catalog = load_tables(conf_dir())
        rows = parse_sinfo(read_sinfo())
        name = args.name or (args.output.stem if args.output else None)  # Hydra picks an inventory by file name
        generated = build(rows, partition=args.partition, name=name, aliases=aliases, catalog=catalog, gpu=args.gpu)
    except ConfigError as exc:
        sys.stderr.write(exc.render() + "\n")
        return 2
    text = to_yaml(generated, command)
    for note in generated.notes:
        sys.stderr.write(f"note: {note}\n")
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        sys.stderr.write(f"inventory: {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
