"""hardware threads per core

CPU VMs are sized by physical cores; most clouds sell two vCPUs per core, but some families
(AWS c7a, GCP t2d) run with SMT off. Existing catalogs get 2, and the seeded AMD families that
have SMT off are corrected in place.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 07:22:14.594964
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SMT_OFF_FAMILIES = ("EPYC-Genoa", "EPYC-Milan")


def upgrade() -> None:
    with op.batch_alter_table("hardware", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("threads_per_core", sa.Integer(), server_default="2", nullable=False)
        )
    hardware = sa.table("hardware", sa.column("name", sa.String), sa.column("threads_per_core"))
    op.execute(
        hardware.update()
        .where(hardware.c.name.in_(SMT_OFF_FAMILIES))
        .values(threads_per_core=1)
    )


def downgrade() -> None:
    with op.batch_alter_table("hardware", schema=None) as batch_op:
        batch_op.drop_column("threads_per_core")
