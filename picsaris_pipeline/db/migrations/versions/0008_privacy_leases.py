"""Work leases: `picsaris process` claims photos and attendees so two processes (or a process and
the daemon's runs) split the work instead of repeating it; a killed holder's leases expire.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.create_table(
        "work_leases",
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("item_id", sa.String(100), nullable=False),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "item_id", name="pk_work_leases"),
    )
    op.create_index("ix_work_leases_holder", "work_leases", ["holder"])


def downgrade() -> None:
    op.drop_index("ix_work_leases_holder", table_name="work_leases")
    op.drop_table("work_leases")
