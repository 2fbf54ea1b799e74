"""price history and seed versions

Prices keep their history: the one-row-per-(cloud, name, region) constraint goes, a refresh
appends a row and stamps the one it replaces with ``superseded_at``. Each price row says how its
spot price was reduced from zone prices and whether it is doubtful (``spot_flag`` for the spot
price alone, ``price_flag`` for the whole row). ``seed_version`` marks rows written from the
shipped seed data, so an upgrade can add new seed rows without touching the user's own, and
``seed_state`` records which seed versions a catalog has received. A catalog made before this
revision was seeded by version 1, which is recorded here when it holds seed data.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = ("cloud", "name", "region")
# SQLite reflects 0001's unnamed constraint without a name; the convention names it for batch mode.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _key_constraint_name() -> str:
    for unique in sa.inspect(op.get_bind()).get_unique_constraints("instance_type"):
        if sorted(unique["column_names"]) == sorted(KEY):
            return unique["name"] or "uq_instance_type_cloud"
    return "uq_instance_type_cloud"


def upgrade() -> None:
    name = _key_constraint_name()
    with op.batch_alter_table("instance_type", naming_convention=NAMING) as batch_op:
        batch_op.drop_constraint(name, type_="unique")
        batch_op.add_column(
            sa.Column("spot_statistic", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("spot_flag", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("price_flag", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("superseded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("seed_version", sa.Integer(), nullable=True))
        batch_op.create_index("ix_instance_type_superseded_at", ["superseded_at"], unique=False)
    op.create_table(
        "seed_state",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("applied_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("quantplan_version", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    # Rows already there came from seed version 1 when their source is the shipped snapshot;
    # anything else was imported by the user and stays theirs.
    instance = sa.table(
        "instance_type", sa.column("price_source", sa.String), sa.column("seed_version")
    )
    op.execute(
        instance.update()
        .where(
            instance.c.price_source.like("SkyPilot catalog v_ %/vms.csv (snapshot, date unknown%")
        )
        .values(seed_version=1)
    )
    bind = op.get_bind()
    seeded = bind.execute(sa.text("SELECT count(*) FROM hardware")).scalar_one()
    if seeded:
        state = sa.table(
            "seed_state",
            sa.column("version", sa.Integer),
            sa.column("applied_at", sa.DateTime),
            sa.column("quantplan_version", sa.String),
        )
        op.execute(
            state.insert().values(
                version=1, applied_at=sa.func.current_timestamp(), quantplan_version="before 0005"
            )
        )


def downgrade() -> None:
    # The old schema holds one price per instance type: profiles measured on a superseded row
    # move to the current row of the same type, then the history is dropped.
    op.execute(
        """
        UPDATE profile SET instance_type_id = (
            SELECT cur.id FROM instance_type cur, instance_type old
            WHERE old.id = profile.instance_type_id AND cur.superseded_at IS NULL
              AND cur.cloud = old.cloud AND cur.name = old.name AND cur.region = old.region
        )
        WHERE instance_type_id IN (SELECT id FROM instance_type WHERE superseded_at IS NOT NULL)
        """
    )
    op.execute("DELETE FROM instance_type WHERE superseded_at IS NOT NULL")
    op.drop_table("seed_state")
    with op.batch_alter_table("instance_type", naming_convention=NAMING) as batch_op:
        batch_op.drop_index("ix_instance_type_superseded_at")
        batch_op.drop_column("seed_version")
        batch_op.drop_column("superseded_at")
        batch_op.drop_column("price_flag")
        batch_op.drop_column("spot_flag")
        batch_op.drop_column("spot_statistic")
        batch_op.create_unique_constraint("uq_instance_type_cloud", list(KEY))
