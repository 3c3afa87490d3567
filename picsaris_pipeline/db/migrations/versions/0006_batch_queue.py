"""Photos waiting to be run in a batch: intake defers a photo whose uploader already has one waiting,
and the batch sensor launches such photos together, one run per range of partitions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    # Nullable: set while the photo waits for the batch sensor, cleared when a batch takes it.
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("batch_queued_at", sa.DateTime(timezone=True)))
    op.create_index("ix_photos_batch_queued_at", "photos", ["batch_queued_at"])


def downgrade() -> None:
    op.drop_index("ix_photos_batch_queued_at", table_name="photos")
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("batch_queued_at")
