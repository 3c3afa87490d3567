"""Near-duplicates confirmed by a second, independent signal."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"


def upgrade() -> None:
    # Nullable: a photo verified before this revision has no fingerprint, so it can be confirmed as
    # nobody's near-duplicate (a 64-bit hash match alone is not proof); it is simply not compared.
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("near_duplicate_fingerprint", sa.LargeBinary()))


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("near_duplicate_fingerprint")
