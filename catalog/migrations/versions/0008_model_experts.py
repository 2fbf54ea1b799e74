"""mixture-of-experts shape of a model card

A model card can now say how many experts each MoE layer has and how many each token is routed
to. A decode step of a batch reads every expert one of its tokens picks, not only the active
parameters of one token: with 2 of 8 experts a token, a batch of 8 reads about 90 % of
Mixtral-8x7B's expert weights. Without these columns the planner could only count the active
parameters at every batch size.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("experts", "experts_per_token")


def upgrade() -> None:
    with op.batch_alter_table("model_card") as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))
    # The one MoE card the seed shipped before: filled in where it is still the seed's shape, so
    # an upgraded catalog plans Mixtral as a fresh one does (a user's own card stays as it is).
    op.execute(
        "UPDATE model_card SET experts = 8, experts_per_token = 2 "
        "WHERE name = 'Mixtral-8x7B' AND parameters_b = 46.703 AND active_parameters_b = 12.879"
    )


def downgrade() -> None:
    with op.batch_alter_table("model_card") as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
