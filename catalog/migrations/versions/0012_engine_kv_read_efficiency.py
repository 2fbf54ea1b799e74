"""Rate at which an engine's attention reads the KV cache

Two engine-trait columns: the efficiency at which decode attention reads the KV cache, with the
engine's default attention kernel and without flash attention, on the footing of the bandwidth
efficiency (the weights'). llama.cpp read it at 0.73 (flash attention) and 0.42 (without) of
its F16 weights' rate on an H200, and at 0.24 and 0.46 on two CPU cores, whatever the weights'
format (bench/results/llamacpp_depth.md, llamacpp_depth_cpu.md): a long context slows
decoding more than a read at the weights' rate says.

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

# The shipped rows that get the figures, each with the bandwidth efficiency it shipped with: filled
# in only where a row is still the seed's, so an upgraded catalog predicts as a fresh one
# does (a row the user edited stays as it is, at the weights' rate).
SHIPPED = {("llama.cpp", "gpu"): (0.6, 0.44, 0.25), ("llama.cpp", "cpu"): (0.6, 0.14, 0.27)}


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
