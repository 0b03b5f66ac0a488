"""Imports: upload a boundary file, watch it being checked, commit it as a generation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, File, Form, Path, Query, UploadFile

from api.dependencies import EngineDep
from api.schemas import ErrorOut, ImportJobOut
from gridmap.db.engine import libpq_url
from gridmap.ingest import jobs

router = APIRouter(prefix="/api/v1", tags=["imports"])

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 422: {"model": ErrorOut},
}  # fmt: skip
JobId = Annotated[int, Path(description="import job id", ge=1)]


def _url(engine: EngineDep) -> str:
    return libpq_url(engine.url.render_as_string(hide_password=False))


@router.post(
    "/imports",
    operation_id="create_import",
    response_model=ImportJobOut,
    status_code=202,
    responses=ERRORS,
)
def create_import(
    engine: EngineDep,
    background: BackgroundTasks,
    file: Annotated[UploadFile, File(description="shapefile .zip, .gpkg, .geojson or .fgb")],
    level: Annotated[str, Form(description="district…grid, building, facility, worker")],
    code_field: Annotated[str | None, Form()] = None,
    name_field: Annotated[str | None, Form()] = None,
    parent_field: Annotated[str | None, Form()] = None,
    encoding: Annotated[str | None, Form(description="UTF-8, GBK… (default: .cpg)")] = None,
    source_crs: Annotated[str | None, Form(description="the CRS (overrides .prj)")] = None,
    layer: Annotated[str | None, Form(description="GeoPackage layer, or .zip dataset")] = None,
    fix: Annotated[bool, Form(description="repair invalid geometry by make_valid")] = False,
    sliver_m2: Annotated[float | None, Form(description="sliver warning under this area "
                                                        "(default 1)")] = None,
    overlap_m2: Annotated[float | None, Form(description="overlaps above this are errors "
                                                         "(default 1); smaller ones are "
                                                         "summed up per parent as an "
                                                         "info finding")] = None,
    gap_m2: Annotated[float | None, Form(description="gaps above this are errors "
                                                     "(default 1); smaller ones are summed "
                                                     "up per parent as an info "
                                                     "finding")] = None,
    outside_fraction: Annotated[float | None, Form(description="largest share of an area "
                                                               "outside its parent "
                                                               "(default 0.001)")] = None,
) -> Any:
    """Upload a file; it is read and checked in the background (poll the job)."""
    url = _url(engine)
    options = {k: v for k, v in {
        "code_field": code_field, "name_field": name_field, "parent_field": parent_field,
        "encoding": encoding, "source_crs": source_crs, "layer": layer, "fix": fix,
        "sliver_m2": sliver_m2, "overlap_m2": overlap_m2, "gap_m2": gap_m2,
        "outside_fraction": outside_fraction,
    }.items() if v not in (None, False)}  # fmt: skip
    with engine.connect() as sa_conn:
        raw = sa_conn.connection.driver_connection
        job_id = jobs.create_job(raw, level, file.filename or "", file.file,  # type: ignore[arg-type]
                                 options)  # fmt: skip
        job = jobs.get_job(raw, job_id)  # type: ignore[arg-type]
    background.add_task(jobs.run_check, url, job_id)
    return job


@router.get("/imports", operation_id="list_imports", response_model=list[ImportJobOut])
def list_imports(
    engine: EngineDep,
    status: Annotated[Literal["queued", "checking", "checked", "failed", "committing",
                              "committed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Recent import jobs, newest first (reports left out: GET one job for its report)."""
    with engine.connect() as sa_conn:
        return jobs.list_jobs(sa_conn.connection.driver_connection, status=status,  # type: ignore[arg-type]
                              limit=limit)  # fmt: skip


@router.get(
    "/imports/{job_id}", operation_id="get_import", response_model=ImportJobOut, responses=ERRORS
)
def get_import(job_id: JobId, engine: EngineDep) -> Any:
    """The job: status, progress and report (findings, diff)."""
    with engine.connect() as sa_conn:
        return jobs.get_job(sa_conn.connection.driver_connection, job_id)  # type: ignore[arg-type]


@router.post(
    "/imports/{job_id}/commit",
    operation_id="commit_import",
    response_model=ImportJobOut,
    responses=ERRORS,
)
def commit_import(job_id: JobId, engine: EngineDep) -> Any:
    """Publish a checked import as the new active generation (errors block this)."""
    return jobs.commit_job(_url(engine), job_id)
