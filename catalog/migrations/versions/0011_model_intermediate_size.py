"""MLP width of a model card

A model's MLP width (``intermediate_size`` in its config.json) becomes a column: a weight-only
scheme quantizes each layer's input in groups (GPTQ and AWQ at 64 or 128 weights), so the group
size must divide every input width, per GPU where vLLM splits the layer (the MLP's down
projection reads intermediate_size / GPUs inputs). Qwen2.5-14B's 13,824 split over 8 GPUs is
1,728, not a multiple of 128.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 02:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The models the seed shipped before, with the hidden size and layer count it gave each:
# filled in where a row still has the seed's name and shape, so an upgraded catalog checks
# group sizes as a fresh one does (a user's own model, or one edited since, stays blank).
SHIPPED: dict[str, tuple[int, int, int]] = {
    "SmolLM2-135M-Instruct": (576, 30, 1536),
    "Llama-3.2-1B": (2048, 16, 8192),
    "LLaMA-7B": (4096, 32, 11008),
    "LLaMA-13B": (5120, 40, 13824),
    "Llama-2-7B": (4096, 32, 11008),
    "Llama-2-13B": (5120, 40, 13824),
    "Llama-2-70B": (8192, 80, 28672),
    "Llama-3-8B": (4096, 32, 14336),
    "Llama-3.1-8B": (4096, 32, 14336),
    "Llama-3.1-70B": (8192, 80, 28672),
    "Mistral-7B": (4096, 32, 14336),
    "Mixtral-8x7B": (4096, 32, 14336),
    "Qwen2.5-7B": (3584, 28, 18944),
    "Qwen2.5-14B": (5120, 48, 13824),
    "Qwen2.5-32B": (5120, 64, 27648),
    "Qwen2.5-72B": (8192, 80, 29568),
    "Qwen3-14B": (5120, 40, 17408),
    "Llama-3-70B": (8192, 80, 28672),
    "Llama-3.3-70B": (8192, 80, 28672),
}


def upgrade() -> None:
    with op.batch_alter_table("model_card") as batch_op:
        batch_op.add_column(sa.Column("intermediate_size", sa.Integer(), nullable=True))
    for name, (hidden, layers, intermediate) in SHIPPED.items():
        op.execute(
            sa.text(
                "UPDATE model_card SET intermediate_size = :intermediate "
                "WHERE name = :name AND hidden_size = :hidden AND layers = :layers"
            ).bindparams(intermediate=intermediate, name=name, hidden=hidden, layers=layers)
        )


def downgrade() -> None:
    with op.batch_alter_table("model_card") as batch_op:
        batch_op.drop_column("intermediate_size")
