"""contact recording status

Revision ID: 0004
Revises: 0003
Each contact says where its recording stands (recording, complete, incomplete) and whether a
recorder failed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recording_status", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column(
                "recording_failed", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("recording_failed")
        batch_op.drop_column("recording_status")
