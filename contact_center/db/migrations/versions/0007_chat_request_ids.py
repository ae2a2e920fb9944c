"""chat lines keep the client's request id

Revision ID: 0007
Revises: 0006
A ``chat.send`` retried with the id of its first try must not store the line twice, whatever
happened to the first (an instance killed after the commit, Redis down when the answer was to
be kept): ``chat_messages.request_id`` holds the client's id, unique per contact and sender,
and a retry gets the stored line back. Lines of the bot and the system have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not a batch (table rebuild) on SQLite: that would drop the search triggers of 0005.
    op.add_column("chat_messages", sa.Column("request_id", sa.String(length=128), nullable=True))
    op.create_index(
        "uq_chat_contact_sender_request",
        "chat_messages",
        ["contact_id", "sender_ref", "request_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_chat_contact_sender_request", table_name="chat_messages")
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.drop_column("request_id")
