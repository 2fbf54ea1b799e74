"""Rate at which an engine's attention reads the KV cache

Two engine-trait columns: the share of spec memory bandwidth at which decode attention reads
the KV cache, with the engine's default attention kernel and without flash attention. llama.cpp
on an H200 read it at 46-49 % of spec with flash attention and 24-25 % without, whatever the
weights' format (bench/results/llamacpp_depth.md), where its weights are read at 0.6-0.7, so a
long context slows decoding more than a read at the weights' rate says.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The shipped row that gets the figures, with the bandwidth efficiency it shipped with: filled
# in only where the row is still the seed's, so an upgraded catalog predicts as a fresh one
# does (a row the user edited stays as it is, at the weights' rate).
SHIPPED = {("llama.cpp", "gpu"): (0.6, 0.47, 0.24)}


def upgrade() -> None:
    with op.batch_alter_table("engine_trait") as batch_op:
        batch_op.add_column(sa.Column("kv_read_efficiency", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("kv_read_efficiency_without_flash_attention", sa.Float(), nullable=True)
        )
    for (engine, kind), (bandwidth, with_flash, without) in SHIPPED.items():
        op.execute(
            sa.text(
                "UPDATE engine_trait SET kv_read_efficiency = :with_flash, "
                "kv_read_efficiency_without_flash_attention = :without "
                "WHERE engine = :engine AND device_kind = :kind "
                "AND bandwidth_efficiency = :bandwidth"
            ).bindparams(
                with_flash=with_flash,
                without=without,
                engine=engine,
                kind=kind,
                bandwidth=bandwidth,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("engine_trait") as batch_op:
        batch_op.drop_column("kv_read_efficiency_without_flash_attention")
        batch_op.drop_column("kv_read_efficiency")
