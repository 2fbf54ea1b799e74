"""llama.cpp's KV-cache read rates on the weights' footing, and on CPUs

Revision 0012 as first shipped gave llama.cpp's GPU row 0.47 and 0.24, the H200's KV read
rates as shares of its spec bandwidth, and its CPU row none. The rates are priors that
calibration scales with the weights' rate, so they are now the weights' 0.6 times the
measured KV-over-F16-weights rate: 0.44 and 0.25 on the GPU, and, measured since on two CPU
cores (bench/results/llamacpp_depth_cpu.md), 0.14 and 0.27 on the CPU. A catalog that holds
the first values gets these; any other value is the user's and stays.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 05:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GPU = (
    "UPDATE engine_trait SET kv_read_efficiency = 0.44, "
    "kv_read_efficiency_without_flash_attention = 0.25 "
    "WHERE engine = 'llama.cpp' AND device_kind = 'gpu' AND kv_read_efficiency = 0.47 "
    "AND kv_read_efficiency_without_flash_attention = 0.24"
)
CPU = (
    "UPDATE engine_trait SET kv_read_efficiency = 0.14, "
    "kv_read_efficiency_without_flash_attention = 0.27 "
    "WHERE engine = 'llama.cpp' AND device_kind = 'cpu' AND bandwidth_efficiency = 0.6 "
    "AND kv_read_efficiency IS NULL AND kv_read_efficiency_without_flash_attention IS NULL"
)


def upgrade() -> None:
    op.execute(sa.text(GPU))
    op.execute(sa.text(CPU))


def downgrade() -> None:
    """Nothing to undo: the values are revision 0012's columns, which its downgrade drops."""
