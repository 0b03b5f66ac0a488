"""A row the database refuses (a NOT NULL, CHECK or length rule the checks missed) as
the domain error users get for bad input, in one place for the CLI and the upload API."""

from __future__ import annotations

import psycopg

from gridmap.errors import InvalidInputError

REFUSALS = (psycopg.IntegrityError, psycopg.DataError)
"""What PostgreSQL raises for rows that break the schema's rules."""


def refused(exc: psycopg.Error, what: str) -> InvalidInputError:
    """``exc`` (one of :data:`REFUSALS`) as an InvalidInputError: ``what`` was refused,
    with PostgreSQL's own message, column and constraint. Not its detail, nor the
    statement: those echo the row's values, which may be personal data."""
    diag = exc.diag
    where = ", ".join(f"{k} {v}" for k, v in (("column", diag.column_name),
                                              ("rule", diag.constraint_name)) if v)  # fmt: skip
    return InvalidInputError(
        f"{what}: the database refused it: {diag.message_primary}"
        + (f" [{where}]" if where else ""),
        details=[{"problem": "refused_by_database", "column": diag.column_name,
                  "constraint": diag.constraint_name}],
    )  # fmt: skip
