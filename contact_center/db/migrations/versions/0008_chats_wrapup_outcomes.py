"""wrap-ups: each advisor's outcome code and notes for a contact

Revision ID: 0008
Revises: 0007
``contact_wrapups`` holds what an advisor recorded when they finished with a contact: an
outcome code (``CC_WRAPUP_OUTCOMES``) and notes. A contact transferred on has one from each
advisor who had it. The same is in the contact's events (``wrapup_done``/``wrapup_recorded``)
for the timeline; this table is what the previous-contacts list reads.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_wrapups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("advisor_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
        sa.ForeignKeyConstraint(["advisor_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_contact_wrapups_contact_id", "contact_wrapups", ["contact_id"])
    op.create_index("ix_contact_wrapups_advisor_id", "contact_wrapups", ["advisor_id"])


def downgrade() -> None:
    op.drop_index("ix_contact_wrapups_advisor_id", table_name="contact_wrapups")
    op.drop_index("ix_contact_wrapups_contact_id", table_name="contact_wrapups")
    op.drop_table("contact_wrapups")
