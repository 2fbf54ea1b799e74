"""task-accuracy recovery in quality results

A quality result can now be a task-accuracy figure on a named benchmark (the row's eval_set):
the quantized model's score, the 16-bit baseline's, and the recovery (score / baseline x 100),
beside perplexity, KL divergence and top-1 agreement. Model cards of quantized releases publish
recovery, not perplexity, so without these columns those figures could not be stored as what
they are.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("task_score", "baseline_task_score", "recovery_pct")


def upgrade() -> None:
    with op.batch_alter_table("quality_result") as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    # Rows holding only a task figure would be rows without any metric in the older schema,
    # which its readers refuse: they go (with any retraction of them) before the columns do.
    only_task = (
        "SELECT id FROM quality_result WHERE perplexity IS NULL AND perplexity_delta_pct IS NULL "
        "AND kl_divergence IS NULL AND top1_agreement IS NULL"
    )
    op.execute(f"DELETE FROM retraction WHERE kind = 'quality' AND row_id IN ({only_task})")
    op.execute(f"DELETE FROM quality_result WHERE id IN ({only_task})")
    with op.batch_alter_table("quality_result") as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
