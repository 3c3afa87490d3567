"""Consent: face data written only in the transaction that re-reads consent; rejected selfies."""

from __future__ import annotations

revision = "0013"
down_revision = "0012"


# No table or column changes: the revision marks the release whose code the docstring describes.
def upgrade() -> None: ...


def downgrade() -> None: ...
