"""The FastAPI application: NeMo Customizer's v1 routes, our dry run (/v1/plans) and gate route, bearer tokens.

`create_app(settings)` builds it; the job service (planner.service.jobs) starts with the application (one
reconciling tick, then its watcher thread) and stops with it. Errors are FastAPI's {"detail": ...}: a text (404,
400 such as Customizer's versionless URN), or a list of findings with the key path in the request and the fix
(422). With a token configured (LADDER_API_TOKEN), every route needs `Authorization: Bearer <token>`; tokens
scoped to a namespace (LADDER_API_TOKENS="<token>=<namespace>,...") see and create that namespace's jobs only.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from planner.service.api import (
    ApiError,
    ConfigPage,
    GateVerdict,
    Job,
    JobCreate,
    JobPage,
    PlanResponse,
    Problem,
    StatusDetails,
)
from planner.service.jobs import JobService
from planner.service.settings import Settings
from planner.service.translate import api_findings, catalog

VERSION = "0.1.0"
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Bad request (a config URN without a version: Customizer's detail)."},
    401: {"model": Problem, "description": "No or a wrong bearer token."},
    403: {"model": Problem, "description": "A namespace the token is not scoped to."},
    404: {"model": Problem, "description": "No such job (or not in the token's namespace)."},
    422: {"model": Problem, "description": "The body is invalid or its plan is not feasible: the findings."},
}
_PRECISIONS = {"int8", "bf16", "fp16", "fp32", "fp8-mixed", "bf16-mixed"}  # Customizer's ModelPrecision


def tokens_from_env(env: dict[str, str] | None = None) -> dict[str, str | None]:
    """token -> namespace it is scoped to (None: every namespace). LADDER_API_TOKEN is unscoped;
    LADDER_API_TOKENS="tok1=team-a,tok2=team-b" adds scoped ones."""
    env = dict(os.environ) if env is None else env
    out: dict[str, str | None] = {}
    if env.get("LADDER_API_TOKEN"):
        out[env["LADDER_API_TOKEN"]] = None
    for item in (env.get("LADDER_API_TOKENS") or "").split(","):
        token, sep, namespace = item.strip().partition("=")
        if token and sep and namespace:
            out[token] = namespace
    return out


def _service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


_BEARER = HTTPBearer(auto_error=False, description="LADDER_API_TOKEN (or a scoped token of LADDER_API_TOKENS).")


def _scope(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
) -> str | None:
    """The namespace the caller may see (None: all); 401 without the right bearer token."""
    tokens: dict[str, str | None] = request.app.state.tokens
    if not tokens:
        return None
    given = credentials.credentials.strip().encode() if credentials is not None else b""
    for token, namespace in tokens.items():
        if given and hmac.compare_digest(given, token.encode()):
            return namespace
    raise ApiError(401, "a bearer token is required: Authorization: Bearer <token>")


Scope = Annotated[str | None, Depends(_scope)]
Service = Annotated[JobService, Depends(_service)]


def create_app(settings: Settings, tokens: dict[str, str | None] | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = JobService(settings)
        service.start()
        app.state.service = service
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="ladder job service",
        version=VERSION,
        description="NeMo Customizer's v1 customization API, planned and gated before a job starts. Fields and "
        "routes marked 'ladder extension' are ours; the rest follow Customizer's shapes.",
        lifespan=lifespan,
        responses=_ERRORS,
    )

    app.state.tokens = tokens_from_env() if tokens is None else tokens

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    # ----------------------------------------------------------------- configs

    @app.get("/v1/customization/configs", response_model=ConfigPage, tags=["customization"])
    def list_configs(
        scope: Scope,
        model: Annotated[
            str | None, Query(description="ladder extension: the base model, name or namespace/name")
        ] = None,
        target_base_model: Annotated[str | None, Query(alias="filter[target_base_model]")] = None,
        base_model: Annotated[str | None, Query(alias="filter[base_model]")] = None,
        name: Annotated[str | None, Query(alias="filter[name]")] = None,
        namespace: Annotated[str | None, Query(alias="filter[namespace]")] = None,
        training_type: Annotated[str | None, Query(alias="filter[training_type]")] = None,
        finetuning_type: Annotated[str | None, Query(alias="filter[finetuning_type]")] = None,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """The catalog's customization configs with their training options (GPUs, nodes, TP/PP, micro batch)."""
        items = [_config_item(urn) for urn in sorted(catalog())]
        wanted_model = model or target_base_model or base_model
        if wanted_model:
            items = [c for c in items if wanted_model in (c["target"], c["target"].split("/")[-1], c["model"])]
        if name:
            items = [c for c in items if name in (c["name"], c["urn"], c["name"].split("@")[0])]
        if namespace:
            items = [c for c in items if c["namespace"] == namespace]
        for key, value in (("training_type", training_type), ("finetuning_type", finetuning_type)):
            if value:
                items = [c for c in items if any(o[key] == value for o in c["training_options"])]
        return {"object": "list", **_paged(items, page, page_size)}

    # ----------------------------------------------------------------- jobs

    @app.post("/v1/customization/jobs", response_model=Job, tags=["customization"])
    def create_job(body: JobCreate, scope: Scope, service: Service) -> dict[str, Any]:
        """Plan the job with the planner's checks; a feasible plan is compiled and queued (status created)."""
        namespace = body.namespace or "default"
        if scope is not None and namespace != scope:
            if body.namespace is not None:
                raise ApiError(403, f"namespace {namespace} is not this token's ({scope})")
            namespace = scope
        return service.view(service.create(body, namespace))

    @app.get("/v1/customization/jobs", response_model=JobPage, tags=["customization"])
    def list_jobs(
        scope: Scope,
        service: Service,
        status: Annotated[str | None, Query(alias="filter[status]")] = None,
        status_plain: Annotated[
            str | None, Query(alias="status", description="ladder extension: filter[status]")
        ] = None,
        namespace: Annotated[str | None, Query(alias="filter[namespace]")] = None,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=1000)] = 10,
        sort: Annotated[str, Query(pattern="^-?created_at$")] = "-created_at",
    ) -> dict[str, Any]:
        """Jobs, newest first (sort=created_at: oldest first), filtered by status and namespace, one page."""
        filters = {k: v for k, v in (("status", status or status_plain), ("namespace", namespace)) if v}
        if scope is not None:
            if filters.get("namespace", scope) != scope:
                return {"object": "list", **_paged([], page, page_size), "sort": sort, "filter": filters}
            filters["namespace"] = scope
        rows, total = service.store.page(filters, page, page_size, newest_first=sort.startswith("-"))
        data = [service.view(service.refresh(row)) for row in rows]
        pagination = _pagination(page, page_size, len(data), total)
        return {"object": "list", "data": data, "pagination": pagination, "sort": sort, "filter": filters}

    @app.get("/v1/customization/jobs/{job_id}", response_model=Job, tags=["customization"])
    def get_job(job_id: str, scope: Scope, service: Service) -> dict[str, Any]:
        return service.view(service.refresh(service.get(job_id, scope)))

    @app.get("/v1/customization/jobs/{job_id}/status", response_model=StatusDetails, tags=["customization"])
    def job_status(job_id: str, scope: Scope, service: Service) -> dict[str, Any]:
        """Status, progress, per-epoch train_loss and val_loss, the status log; the stages and the gate (ours)."""
        return service.details(service.refresh(service.get(job_id, scope)))

    @app.post("/v1/customization/jobs/{job_id}/cancel", response_model=Job, tags=["customization"])
    def cancel_job(job_id: str, scope: Scope, service: Service) -> dict[str, Any]:
        """A queued job is cancelled at once; a running one is asked to stop (its training stage saves a
        checkpoint first) and shows cancelling until it has."""
        service.get(job_id, scope)
        return service.view(service.cancel(job_id))

    @app.get("/v1/customization/jobs/{job_id}/gate", response_model=GateVerdict, tags=["ladder extension"])
    def job_gate(job_id: str, scope: Scope, service: Service) -> dict[str, Any]:
        """ladder extension: the gate's verdict and report; a failed gate keeps the model unpublished."""
        row = service.refresh(service.get(job_id, scope))
        gate: dict[str, Any] = service.details(row)["gate"]
        return gate

    # ----------------------------------------------------------------- dry run

    @app.post(
        "/v1/plans",
        tags=["ladder extension"],
        response_class=Response,
        responses={200: {"model": PlanResponse, "description": "The plan (feasible or not) and its findings."}},
    )
    def dry_run(body: JobCreate, scope: Scope, service: Service) -> Response:
        """ladder extension: plan a job body without creating a job; the plan JSON back, feasible or not."""
        planned = service.plan(body)
        plan, t = planned.plan, planned.translation
        namespace = body.namespace or scope or "default"
        output = (
            body.output_model
            or f"{namespace}/{t.entry.model.name}-{t.dataset.name}-{body.hyperparameters.finetuning_type}"
        )
        head = {
            "feasible": plan.feasible,
            "findings": api_findings(plan.findings, t.kind),
            "output_model": output,
            "planner_command": planned.command,
        }
        text = json.dumps(head)[:-1] + ',"plan":' + plan.model_dump_json() + "}"  # the plan serialised once
        return Response(text, media_type="application/json")

    return app


def openapi_json() -> str:
    """The OpenAPI schema of the service (docs/openapi.json, written by python -m planner.docs)."""
    from pathlib import Path

    settings = Settings(datasets_root=Path("datasets"), data_dir=Path("."), database_url="sqlite://")
    return json.dumps(create_app(settings, tokens={}).openapi(), indent=2, sort_keys=True) + "\n"


def _config_item(urn: str) -> dict[str, Any]:
    entry = catalog()[urn]
    config, model = entry.config, entry.model
    parsed = entry.urn
    options = [o.model_dump() for o in config.training_options]
    customizer = {"sft", "dpo", "grpo", "distillation"}
    return {
        "name": urn.split("/", 1)[1],
        "namespace": parsed.namespace,
        "description": f"{model.name} ({model.hf_id}) on {parsed.gpu_class}",
        "target": f"{model.namespace}/{model.name}",
        "training_precision": config.precision if config.precision in _PRECISIONS else None,
        "max_seq_length": config.max_seq_length,
        "prompt_template": config.prompt_template,
        "training_options": [o for o in options if o["training_type"] in customizer],
        "more_training_options": [o for o in options if o["training_type"] not in customizer],
        "urn": urn,
        "model": entry.option,
    }


def _pagination(page: int, page_size: int, count: int, total: int) -> dict[str, int]:
    return {
        "page": page,
        "page_size": page_size,
        "current_page_size": count,
        "total_pages": max(1, -(-total // page_size)),
        "total_results": total,
    }


def _paged(items: list[Any], page: int, page_size: int) -> dict[str, Any]:
    data = items[(page - 1) * page_size : page * page_size]
    return {"data": data, "pagination": _pagination(page, page_size, len(data), len(items))}


__all__ = ["create_app", "openapi_json", "tokens_from_env"]
