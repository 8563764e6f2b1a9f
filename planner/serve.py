"""`python -m planner.serve [--host 127.0.0.1] [--port 8000] [--datasets-root ./datasets] [--inventory local]`: the
Customizer-compatible job service (planner.service) on uvicorn.

Jobs, their bundles and the SQLite store live in the data folder ($LADDER_HOME, else $XDG_DATA_HOME/ladder, else
~/.local/share/ladder); DATABASE_URL=postgresql://... puts the store in PostgreSQL. The server listens on the
loopback interface only, unless LADDER_API_TOKEN is set: then every route needs `Authorization: Bearer <token>`.
Exit 2 for a bad option (another host without a token, an unknown inventory).
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m planner.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--datasets-root", default="datasets", help="<namespace>/<name>/training/ live here")
    parser.add_argument("--inventory", default="local", help="the inventory option jobs are planned for and run on")
    parser.add_argument(
        "--launcher",
        default="auto",
        choices=["auto", "local", "torchrun", "slurm"],
        help="how jobs run (default auto: Slurm for an inventory with a scheduler, else local processes); slurm "
        "submits each job's launch/submit.sh to the Slurm cluster this machine reaches",
    )
    parser.add_argument(
        "--max-running",
        type=int,
        default=None,
        help="jobs running at once, at most (default: as many as the inventory's GPUs hold; 0 holds the queue: "
        "jobs are accepted and wait, for maintenance)",
    )
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)
    try:
        import uvicorn

        from planner.service.app import create_app, tokens_from_env
        from planner.service.settings import LOCALHOST, Settings
    except ImportError as exc:
        sys.stderr.write(
            f"error: the job service needs the service extra ({exc.name} is missing): "
            "pip install 'ladder-planner[service]'\n"
        )
        return 2
    from planner.errors import ConfigError
    from planner.service.jobs import load_inventory

    tokens = tokens_from_env()
    if args.host not in LOCALHOST and not tokens:
        sys.stderr.write(
            f"error: --host {args.host} would open the job service to the network without a token\n"
            "  fix: set LADDER_API_TOKEN (clients send Authorization: Bearer <token>), or keep --host 127.0.0.1\n"
        )
        return 2
    if args.max_running is not None and args.max_running < 0:
        sys.stderr.write("error: --max-running takes 0 or more\n")
        return 2
    settings = Settings.from_env(
        datasets_root=args.datasets_root, inventory=args.inventory, launcher=args.launcher, max_running=args.max_running
    )
    try:
        load_inventory(settings.inventory)
    except ConfigError as exc:
        sys.stderr.write(exc.render().replace("at: inventory", "at: --inventory") + "\n")
        return 2
    if not settings.datasets_root.is_dir():
        sys.stderr.write(f"note: the datasets root {settings.datasets_root} does not exist yet\n")
    sys.stderr.write(
        f"job service: data in {settings.data_dir}, datasets under {settings.datasets_root}, "
        f"inventory {settings.inventory}{', bearer token required' if tokens else ''}\n"
    )
    uvicorn.run(create_app(settings, tokens), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
