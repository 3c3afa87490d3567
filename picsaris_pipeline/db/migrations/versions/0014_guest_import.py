"""Guest-list import: attendees signed up in bulk."""

from __future__ import annotations

revision = "0014"
down_revision = "0013"


# No table or column changes: the revision marks the release whose code the docstring describes.
def upgrade() -> None: ...


def downgrade() -> None: ...
