"""Perceptual hash of each verified photo, to find the same shot sent again by another phone."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    # Nullable: photos verified before this revision have no hash and are simply never compared.
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("perceptual_hash", sa.BigInteger()))
    op.create_index("ix_photos_event_id_perceptual_hash", "photos", ["event_id", "perceptual_hash"])


def downgrade() -> None:
    op.drop_index("ix_photos_event_id_perceptual_hash", table_name="photos")
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("perceptual_hash")
