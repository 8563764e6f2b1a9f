"""The jobs: create (plan, compile, queue), watch (derive each job's status from its run and its bundle), start
queued jobs as GPUs free up, cancel, and the views the API returns.

One watcher thread ticks every poll interval (and at once when a job is created or cancelled): it polls every open
job's run, records status changes in the store with a status-log entry, and starts queued jobs oldest first while
the inventory's GPUs allow (the executor's capacity; a job holds its plan's GPUs). On start the server runs one
tick before it answers: runs that survived a restart are found again by their handles (or the job folder's pid
file, for a run whose handle was never saved) and tracked to the end; a run that ended while the server was down
gets its final status from its exit code and its stages' status files.
"""

from __future__ import annotations

import logging
import secrets
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

from planner.service import progress
from planner.service.api import TERMINAL, ApiError, JobCreate
from planner.service.executors import EXECUTORS, Executor, RunState
from planner.service.planning import Planned, base, plan_body, refusal
from planner.service.settings import Settings
from planner.service.store import Store, now
from planner.service.translate import dataset_ref, finding, resolve_config
from schemas.inventory import Inventory
from schemas.plan import Plan

log = logging.getLogger("planner.serve")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def new_id() -> str:
    """cust-<base58 of a random 128-bit uuid>, Customizer's form."""
    n = uuid.UUID(bytes=secrets.token_bytes(16), version=4).int
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "cust-" + out.rjust(22, _B58[0])


def load_inventory(name: str) -> Inventory:
    """The inventory option as the planner composes it (ConfigError for an unknown one)."""
    return Inventory.model_validate(base((f"inventory={name}",))["inventory"])


class JobService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.inventory = load_inventory(settings.inventory)
        self.store = Store(settings.database_url)
        instances: dict[type, Executor] = {}
        self.executors: dict[str, Executor] = {}
        for launcher, cls in EXECUTORS.items():
            self.executors[launcher] = instances.setdefault(cls, cls())
        self._lock = threading.RLock()  # status changes and starts, one at a time
        self._planning = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._plans: OrderedDict[str, Plan] = OrderedDict()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.tick(reconcile=True)
        self._thread = threading.Thread(target=self._loop, name="job-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.store.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.tick()
            except Exception:  # a bad tick (database gone for a moment) must not end the watcher
                log.exception("job watcher: tick failed")

    # ------------------------------------------------------------------ planning and creating

    def plan(self, body: JobCreate, output_model: str | None = None) -> Planned:
        with self._planning:
            root, inventory, launcher = self.settings.datasets_root, self.settings.inventory, self.settings.launcher
            return plan_body(body, root, inventory, launcher, output_model)

    def create(self, body: JobCreate, namespace: str) -> dict[str, Any]:
        from planner.bundle import write_bundle
        from planner.errors import ConfigError
        from planner.render import render
        from planner.report import RENDERERS

        job_id = new_id()
        # the job's output model names what its plan publishes (goal.output_model)
        hp = body.hyperparameters
        model, dataset = resolve_config(body.config).model.name, dataset_ref(body.dataset, body.namespace).name
        output_model = body.output_model or f"{namespace}/{model}-{dataset}-{hp.finetuning_type}@{job_id}"
        planned = self.plan(body, output_model)
        plan, t = planned.plan, planned.translation
        if not plan.feasible:
            raise refusal(planned)
        executor = self.executors.get(plan.decision.launcher)
        if executor is None:
            raise ApiError(
                422,
                [
                    finding(
                        "inventory",
                        "no-executor",
                        f"the plan runs with the {plan.decision.launcher} launcher, which this server cannot run",
                        "run the server with an inventory it can run (--inventory local)",
                    )
                ],
            )
        folder = self.settings.jobs_dir / job_id
        try:
            bundle = write_bundle(render(plan, RENDERERS["markdown"](plan), scripts=True), folder, plan.name)
        except ConfigError as exc:
            raise ApiError(500, f"cannot write the bundle: {exc.message} ({exc.fix})") from None
        ns = namespace
        at = now()
        config = t.entry.config
        option = config.option(*_option_key(hp.training_type, hp.finetuning_type)) or (
            config.training_options[0] if config.training_options else None
        )
        summary = {
            "name": body.name,
            "description": body.description,
            "project": body.project,
            "custom_fields": body.custom_fields,
            "dataset": t.dataset.model_dump(exclude_none=True),
            "hyperparameters": hp.model_dump(exclude_none=True),
            "planner_command": planned.command,
            "estimate": plan.estimate.model_dump(mode="json"),
            "warnings": [{"message": m, "explanation": e} for m, e in t.warnings]
            + [
                {"message": f["msg"], "explanation": f"{f['path']}: {f['fix']}" if f["fix"] else f["path"]}
                for f in _warnings(planned)
            ],
            "config_snapshot": {
                "base_model": f"{t.entry.model.namespace}/{t.entry.model.name}",
                "max_seq_length": config.max_seq_length,
                "precision": config.precision,
                "training_option": option.model_dump() if option else None,
                "prompt_template": config.prompt_template,
            },
        }
        row = {
            "id": job_id,
            "namespace": ns,
            "status": "created",
            "created_at": at,
            "updated_at": at,
            "config": config.urn,
            "output_model": output_model,
            "plan_id": plan.id,
            "bundle": str(bundle),
            "executor": plan.decision.launcher,
            "gpus": max([1, *(s.layout.gpus for s in plan.stages if s.layout is not None)]),
            "handle": None,
            "cancel_requested": False,
            "error": None,
            "request": body.model_dump(mode="json", exclude_none=True),
            "summary": summary,
        }
        self.store.insert(row, "created", f"plan {plan.id} is feasible; bundle {bundle}")
        self._plans[job_id] = plan
        self._wake.set()
        # the job as created: Customizer's POST answers status created, though the watcher may have moved it on
        return {**row, "started_at": None, "finished_at": None}

    # ------------------------------------------------------------------ watching and starting

    def tick(self, reconcile: bool = False) -> None:
        with self._lock:
            rows = self.store.open_jobs()
            capacity = min(ex.capacity(self.inventory) for ex in set(self.executors.values()))
            most = self.settings.max_running
            used = running = 0
            for row in rows:
                if row["handle"] is not None:
                    row = self.refresh(row, reconcile=reconcile)
                    if row["finished_at"] is None:
                        used, running = used + row["gpus"], running + 1
            for row in rows:
                if row["handle"] is not None:
                    continue
                if row["cancel_requested"]:
                    self.store.update(row["id"], {"status": "cancelled", "finished_at": now()}, ("cancelled", None))
                    continue
                adopted = self._executor(row).adopt(self._folder(row))
                if adopted is not None:  # started before a crash that lost the handle: track that run
                    self.store.update(row["id"], {"handle": adopted, "started_at": now()}, ("running", "found its run"))
                    used, running = used + row["gpus"], running + 1
                    continue
                if used + row["gpus"] > capacity or (most is not None and running >= most):
                    if row["status"] == "created":
                        why = (
                            f"waiting for {row['gpus']} GPU(s): {used} of {capacity} in use"
                            if used + row["gpus"] > capacity
                            else f"waiting: {running} job(s) running, the server runs at most {most} (--max-running)"
                        )
                        self.store.update(row["id"], {"status": "pending"}, ("pending", why))
                    break  # oldest first: a later job does not overtake this one
                self._start(row)
                used, running = used + row["gpus"], running + 1

    def _start(self, row: dict[str, Any]) -> None:
        try:
            plan = self.plan_of(row)
        except (OSError, ValueError) as exc:
            self._bundle_gone(row, exc)
            return
        try:
            handle = self._executor(row).start(row["id"], Path(row["bundle"]), plan, self._folder(row))
        except OSError as exc:
            at = now()
            self.store.update(
                row["id"], {"status": "failed", "error": str(exc), "finished_at": at}, ("failed", f"start: {exc}"), at
            )
            return
        executor = self._executor(row)
        status = "pending" if executor.queues else "running"  # a queued run is pending until a job of it runs
        what = "submitted" if executor.queues else "started"
        self.store.update(
            row["id"],
            {"handle": handle, "started_at": now(), "status": status},
            (status, f"{what} {Path(row['bundle']).name} ({_run_of(handle)})"),
        )

    def _bundle_gone(self, row: dict[str, Any], exc: Exception) -> dict[str, Any]:
        """The job's bundle was removed or damaged: nothing more to run or follow; it fails, saying so."""
        at = now()
        why = f"cannot read the job's plan.json ({exc}): the bundle {row['bundle']} was removed or damaged"
        gone = {"status": "failed", "error": why, "finished_at": at}
        self.store.update(row["id"], gone, ("failed", why), at)
        return {**row, **gone, "updated_at": at}

    def refresh(self, row: dict[str, Any], reconcile: bool = False) -> dict[str, Any]:
        """Derive the job's status from its run and its bundle; record a change (and the end of the run)."""
        if row["handle"] is None or row["finished_at"] is not None:
            return row
        with self._lock:
            # read again under the lock: a request's row may predate a change the watcher (or a cancel) just made,
            # and deriving from it would record that change a second time
            current = self.store.get(row["id"])
            if current is None or current["handle"] is None or current["finished_at"] is not None:
                return current or row
            row = current
            try:
                plan = self.plan_of(row)
            except (OSError, ValueError) as exc:
                return self._bundle_gone(row, exc)
            bundle = Path(row["bundle"])
            run = self._executor(row).poll(row["handle"], bundle, self._folder(row))
            statuses = progress.stage_statuses(plan, bundle)
            trained = progress.output_written(plan, bundle)
            derived = progress.state(plan, statuses, run, trained, row["cancel_requested"])
            fields: dict[str, Any] = {}
            events: list[tuple[str, str | None]] = []
            if reconcile and run.alive:
                events.append((row["status"], f"the server restarted; {_run_of(row['handle'])} still runs"))
            if derived.status != row["status"]:
                fields["status"] = derived.status
                events.append((derived.status, derived.detail))
                if derived.status == "failed":
                    fields["error"] = derived.detail
            if not run.alive:
                fields["finished_at"] = now()
                events += self._gate_events(row, plan, bundle, statuses, run)
            if fields or events:
                at = now()
                for i, event in enumerate(events or [None]):
                    self.store.update(row["id"], fields if i == 0 else {}, event, at)
                row = {**row, **fields, "updated_at": at}
            return row

    def _gate_events(
        self, row: dict[str, Any], plan: Plan, bundle: Path, statuses: dict[str, Any], run: RunState
    ) -> list[tuple[str, str | None]]:
        gate = progress.gate(plan, bundle, statuses, True, row["output_model"])
        status = row["status"] if row["status"] in TERMINAL else "completed"
        if gate["verdict"] == "pass":
            what = f"published {row['output_model']}" if gate["published"] else "publish did not complete"
            return [(status, f"gate passed; {what}")]
        if gate["verdict"] == "fail":
            return [(status, "gate failed: " + "; ".join(gate["reasons"]))]
        return []

    # ------------------------------------------------------------------ cancelling

    def cancel(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            row = self.get(job_id)
            if row["handle"] is not None:
                row = self.refresh(row)
            if row["status"] in TERMINAL:
                raise ApiError(400, f"job {job_id} is {row['status']}: there is nothing to cancel")
            if row["handle"] is None or row["finished_at"] is not None:
                at = now()
                fields = {"status": "cancelled", "cancel_requested": True, "finished_at": at}
                self.store.update(job_id, fields, ("cancelled", "cancelled before it started"), at)
            else:
                said = self._executor(row).cancel(row["handle"], Path(row["bundle"]))
                self.store.update(job_id, {"status": "cancelling", "cancel_requested": True}, ("cancelling", said))
            self._wake.set()
            return self.get(job_id)

    # ------------------------------------------------------------------ reading

    def get(self, job_id: str, namespace: str | None = None) -> dict[str, Any]:
        row = self.store.get(job_id)
        if row is None or (namespace is not None and row["namespace"] != namespace):
            raise ApiError(404, f"Customization job {job_id} not found")
        return row

    def plan_of(self, row: dict[str, Any]) -> Plan:
        plan = self._plans.get(row["id"])
        if plan is None:
            plan = Plan.model_validate_json((Path(row["bundle"]) / "plan.json").read_text(encoding="utf-8"))
            self._plans[row["id"]] = plan
            while len(self._plans) > 512:
                self._plans.popitem(last=False)
        return plan

    def _executor(self, row: dict[str, Any]) -> Executor:
        return self.executors[row["executor"]]

    def _folder(self, row: dict[str, Any]) -> Path:
        return self.settings.jobs_dir / row["id"]

    def details(self, row: dict[str, Any]) -> dict[str, Any]:
        """Customizer's status details, with the stages and the gate (ours)."""
        try:
            plan: Plan | None = self.plan_of(row)
        except (OSError, ValueError):  # a removed bundle: the store's record is all there is
            plan = None
        bundle = Path(row["bundle"])
        statuses = progress.stage_statuses(plan, bundle) if plan is not None else {}
        started, finished = row["started_at"], row["finished_at"]
        elapsed = ((finished or now()) - started).total_seconds() if started else None
        out: dict[str, Any] = {
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "status": row["status"],
            "percentage_done": 0.0,
            "epochs_completed": 0,
            "steps_completed": 0,
            "elapsed_time": round(elapsed, 3) if elapsed is not None else None,
            "status_logs": [
                {"updated_at": e["at"], "message": e["message"], "detail": e["detail"]}
                for e in self.store.events(row["id"])
            ],
        }
        if plan is None:
            reason = f"the bundle {row['bundle']} is gone"
            out.update(stages=[], gate={"verdict": "not_run", "reasons": [reason], "published": False})
            return out
        out.update({k: v for k, v in progress.training(plan, bundle, statuses).items() if v is not None})
        out["stages"] = progress.stages(plan, statuses)
        out["gate"] = progress.gate(plan, bundle, statuses, finished is not None, row["output_model"])
        return out

    def view(self, row: dict[str, Any]) -> dict[str, Any]:
        """The job as Customizer returns it, with the plan id, estimate, gate and bundle (ours)."""
        s = row["summary"]
        details = self.details(row)
        snapshot = s.get("config_snapshot")
        return {
            "id": row["id"],
            "created_at": row["created_at"],
            "updated_at": row["updated_at"],
            "namespace": row["namespace"],
            "name": s.get("name"),
            "description": s.get("description"),
            "project": s.get("project"),
            "custom_fields": s.get("custom_fields"),
            "config": row["config"],
            "dataset": s["dataset"],
            "hyperparameters": s["hyperparameters"],
            "output_model": row["output_model"],
            "status": row["status"],
            "status_details": details,
            "config_snapshot": snapshot if snapshot and snapshot.get("training_option") else None,
            "warnings": s.get("warnings", []),
            "plan_id": row["plan_id"],
            "estimate": s["estimate"],
            "gpus": row["gpus"],
            "bundle": row["bundle"],
            "planner_command": s["planner_command"],
            "gate": details["gate"],
        }


def _run_of(handle: dict[str, Any]) -> str:
    """A run's handle in words: the local process, or the Slurm jobs of its stages."""
    if handle.get("jobs"):
        return "Slurm jobs " + ", ".join(f"{job} ({stage})" for stage, job in handle["jobs"].items())
    return f"pid {handle.get('pid')}"


def _option_key(training_type: str, finetuning_type: str) -> tuple[str, str]:
    return training_type, "lora" if finetuning_type == "lora_merged" else finetuning_type


def _warnings(planned: Planned) -> list[dict[str, Any]]:
    from planner.service.translate import api_findings

    return [f for f in api_findings(planned.plan.findings, planned.translation.kind) if f["severity"] == "warning"]


__all__ = ["JobService", "load_inventory", "new_id"]
