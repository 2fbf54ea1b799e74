"""memory technology of a hardware row

A device's memory technology (HBM, GDDR, unified LPDDR, DDR) becomes a column: engines reach
different shares of spec bandwidth on each (llama.cpp about 45 % on an A100's HBM and 80-90 % on
the GDDR6X of an RTX 3090 or 4090 in the same published runs), so the planner calibrates by it
within an architecture generation.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The devices the seed shipped before, with the bandwidth it gave each: filled in where a
# row still has the seed's name and bandwidth, so an upgraded catalog calibrates as a fresh one
# does (a user's own row, or one edited since, stays as it is).
SHIPPED: dict[str, tuple[float, str]] = {
    "T4": (320, "gddr"),
    "V100-16GB": (900, "hbm"),
    "A10": (600, "gddr"),
    "A10G": (600, "gddr"),
    "L4": (300, "gddr"),
    "L40S": (864, "gddr"),
    "A100-40GB": (1555, "hbm"),
    "A100-80GB-PCIe": (1935, "hbm"),
    "A100-80GB-SXM": (2039, "hbm"),
    "H100-SXM": (3350, "hbm"),
    "H100-NVL": (3900, "hbm"),
    "H200": (4800, "hbm"),
    "P40": (346, "gddr"),
    "RTX-2080": (448, "gddr"),
    "RTX-3080": (760, "gddr"),
    "RTX-3090": (936, "gddr"),
    "RTX-4090": (1008, "gddr"),
    "Apple-M2-Ultra": (800, "unified"),
    "Xeon-SapphireRapids": (307.2, "ddr"),
    "EPYC-Genoa": (460.8, "ddr"),
    "EPYC-Milan": (204.8, "ddr"),
    "x86-generic-AVX2": (100, "ddr"),
}


def upgrade() -> None:
    with op.batch_alter_table("hardware") as batch_op:
        batch_op.add_column(sa.Column("memory_type", sa.String(), nullable=True))
    for name, (bandwidth, memory) in SHIPPED.items():
        op.execute(
            sa.text(
                "UPDATE hardware SET memory_type = :memory "
                "WHERE name = :name AND memory_bandwidth_gbps = :bandwidth"
            ).bindparams(memory=memory, name=name, bandwidth=bandwidth)
        )


def downgrade() -> None:
    with op.batch_alter_table("hardware") as batch_op:
        batch_op.drop_column("memory_type")
