"""per-channel W8A16 schemes

Layers whose width no group size divides are quantized per channel at 8 bits; catalogs seeded
before these schemes existed get them here (new catalogs get them from the seed files).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_SCHEMES = (
    {
        "name": "gptq-w8a16-ch",
        "family": "gptq",
        "bits": 8,
        "group_size": None,
        "variant": "W8A16",
        "bits_per_weight": 8.0,
        "engines": "vllm",
        "source": "per-channel: one FP16 scale per output channel, negligible per weight (derived)",
    },
    {
        "name": "awq-w8a16-ch",
        "family": "awq",
        "bits": 8,
        "group_size": None,
        "variant": "W8A16",
        "bits_per_weight": 8.0,
        "engines": "vllm",
        "source": "per-channel: FP16 scale and zero per output channel, negligible per weight "
        "(derived)",
    },
)

scheme = sa.table(
    "quant_scheme",
    sa.column("name", sa.String),
    sa.column("family", sa.String),
    sa.column("bits", sa.Integer),
    sa.column("group_size", sa.Integer),
    sa.column("variant", sa.String),
    sa.column("bits_per_weight", sa.Float),
    sa.column("engines", sa.String),
    sa.column("source", sa.String),
)


def upgrade() -> None:
    connection = op.get_bind()
    seeded = connection.execute(sa.text("SELECT COUNT(*) FROM quant_scheme")).scalar_one() > 0
    if not seeded:
        return  # an empty catalog is seeded from the seed files, which hold these rows
    present = set(connection.execute(sa.select(scheme.c.name)).scalars())
    missing = [row for row in NEW_SCHEMES if row["name"] not in present]
    if missing:
        op.bulk_insert(scheme, missing)


def downgrade() -> None:
    names = [row["name"] for row in NEW_SCHEMES]
    # Measurements of these schemes go with them (revision 0002 has no such schemes); they go
    # first, or the foreign keys would refuse the delete (PostgreSQL) or be left dangling.
    scheme_ids = sa.table("quant_scheme", sa.column("id", sa.Integer), sa.column("name", sa.String))
    ids = sa.select(scheme_ids.c.id).where(scheme_ids.c.name.in_(names))
    for measured in ("profile", "quality_result"):
        table = sa.table(measured, sa.column("scheme_id", sa.Integer))
        op.execute(table.delete().where(table.c.scheme_id.in_(ids)))
    op.execute(scheme.delete().where(scheme.c.name.in_(names)))
