"""Ground truth that arrives later (chargebacks, confirmed fraud) attached to logged transactions.

A label file is a CSV with a header and the columns `request_id` and `label` (1 = fraud,
0 = legitimate), plus an optional `row` column: the 0-based position of the transaction in the
request's batch. Without `row` (or with it empty) the label applies to every row of the request.
A later label for the same transaction replaces the earlier one.
"""

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg
from psycopg import sql

from fraudcore import auditdb
from fraudcore.errors import DataValidationError, UnavailableError
from fraudcore.settings import Settings

REQUIRED = ("request_id", "label")
OPTIONAL = ("row",)


@dataclass(frozen=True)
class IngestResult:
    """How many label lines there were, how many logged rows they labelled, how many matched nothing."""

    lines: int
    labelled_rows: int
    unmatched_lines: int


def read_labels(path: Path) -> pd.DataFrame:
    """The label file as `request_id` (str), `row` (nullable int), `label` (0/1); errors name the line."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as e:
        raise DataValidationError(f"{path}: no such file") from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataValidationError(f"{path}: not a readable CSV file ({e})") from e
    frame.columns = [str(c).strip() for c in frame.columns]
    expected = "request_id,label[,row]"
    if missing := [c for c in REQUIRED if c not in frame.columns]:
        raise DataValidationError(f"{path}: missing column(s) {', '.join(missing)}; expected {expected}")
    if extra := [c for c in frame.columns if c not in (*REQUIRED, *OPTIONAL)]:
        raise DataValidationError(f"{path}: unexpected column(s) {', '.join(extra)}; expected {expected}")
    if frame.empty:
        raise DataValidationError(f"{path}: no labels")
    request_id = frame["request_id"].str.strip()
    label = frame["label"].str.strip()
    row = frame["row"].str.strip() if "row" in frame.columns else pd.Series("", index=frame.index)
    problems = [
        (request_id == "", "empty request_id"),
        (~label.isin(["0", "1"]), "label must be 0 or 1"),
        ((row != "") & ~row.str.fullmatch(r"\d{1,9}"), "row must be a whole number >= 0"),
    ]
    for bad, message in problems:
        if bad.any():
            line = int(bad.to_numpy().argmax()) + 2  # 1-based, after the header
            raise DataValidationError(f"{path}, line {line}: {message} ({int(bad.sum())} such line(s))")
    labels = pd.DataFrame(
        {
            "request_id": request_id,
            "row": pd.array([int(r) if r else None for r in row], dtype="Int64"),
            "label": label.astype(int),
        }
    )
    duplicated = labels.duplicated(["request_id", "row"], keep=False)
    if duplicated.any():
        line = int(duplicated.to_numpy().argmax()) + 2
        raise DataValidationError(f"{path}, line {line}: the same transaction is labelled more than once")
    return labels


def ingest(settings: Settings, path: Path) -> IngestResult:
    """Attach the file's labels to the audit log in one transaction."""
    labels = read_labels(path)
    matches = sql.SQL("a.request_id = i.request_id AND (i.row_index IS NULL OR a.row_index = i.row_index)")
    update = sql.SQL(
        "UPDATE {table} a SET label = i.label, labelled_at = now() FROM incoming_labels i WHERE {matches}"
    ).format(table=sql.Identifier(auditdb.TABLE), matches=matches)
    unmatched = sql.SQL(
        "SELECT count(*) FROM incoming_labels i WHERE NOT EXISTS (SELECT 1 FROM {table} a WHERE {matches})"
    ).format(table=sql.Identifier(auditdb.TABLE), matches=matches)
    try:
        with auditdb.connect(settings.audit_dsn) as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE incoming_labels (request_id text, row_index integer, label smallint) "
                "ON COMMIT DROP"
            )
            with cur.copy("COPY incoming_labels FROM STDIN") as copy:
                for record in labels.itertuples(index=False):
                    row = None if pd.isna(record.row) else int(record.row)
                    copy.write_row((record.request_id, row, int(record.label)))
            cur.execute(update)
            labelled_rows = cur.rowcount
            cur.execute(unmatched)
            found = cur.fetchone()
    except psycopg.Error as e:
        raise UnavailableError(f"writing labels to the audit log failed: {auditdb.describe(e)}") from e
    return IngestResult(len(labels), labelled_rows, int(found[0]) if found else 0)
