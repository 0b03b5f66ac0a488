"""Generations of the division: the list, and what each one changed."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.dependencies import SessionDep
from api.schemas import ErrorOut, GenerationChangesOut, GenerationOut
from api.security import PrincipalDep
from gridmap import generations

router = APIRouter(prefix="/api/v1", tags=["generations"])

ERRORS: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}, 422: {"model": ErrorOut}}


@router.get("/generations", operation_id="list_generations",
            response_model=list[GenerationOut])  # fmt: skip
def list_generations(session: SessionDep) -> Any:
    """Every generation, oldest first: when it was in force and the one it replaced."""
    return [asdict(g) for g in generations.list_generations(session)]


@router.get("/generations/{generation}", operation_id="get_generation",
            response_model=GenerationChangesOut, responses=ERRORS)  # fmt: skip
def get_generation(
    session: SessionDep,
    principal: PrincipalDep,
    generation: Annotated[int, Path(ge=1, description="generation id")],
    limit: Annotated[int, Query(ge=0, le=100_000, description="codes listed per change")]
    = 1000,
) -> Any:
    """The generation and, per level, the areas it added, removed and changed (in the
    caller's area)."""
    return asdict(generations.generation_changes(session, generation, limit=limit,
                                                 principal=principal))  # fmt: skip
