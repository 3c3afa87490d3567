"""Privacy: what Dagster's storage may hold, and links to pictures that stop working once erased."""

from __future__ import annotations

revision = "0012"
down_revision = "0011"


# No table or column changes: the revision marks the release whose code the docstring describes.
def upgrade() -> None: ...


def downgrade() -> None: ...
