"""temporary passwords

Revision ID: 0006
Revises: 0005
A password an administrator sets (a new account from the admin page, a reset) is temporary:
``users.must_change_password`` holds until the user has chosen their own, and until then no
page, API or WebSocket of theirs works (``identity.auth.require_role``). Existing accounts keep
their passwords as they are (false).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "must_change_password", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("must_change_password")
