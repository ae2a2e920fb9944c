"""one live contact per customer

Revision ID: 0003
Revises: 0002
A partial unique index: concurrent session.start of one customer cannot make two live contacts.
Duplicates already there (from before the index) are abandoned first, keeping the newest.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "state IN ('bot', 'queued', 'offered', 'connected')"


def upgrade() -> None:
    op.execute(
        "UPDATE contacts SET state = 'abandoned' WHERE " + LIVE + " AND EXISTS ("
        "SELECT 1 FROM contacts AS newer WHERE newer.customer_ref = contacts.customer_ref"
        " AND newer." + LIVE + " AND (newer.created_at > contacts.created_at"
        " OR (newer.created_at = contacts.created_at AND newer.id > contacts.id)))"
    )
    op.create_index(
        'uq_contacts_one_live_per_customer', 'contacts', ['customer_ref'], unique=True,
        sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE),
    )


def downgrade() -> None:
    op.drop_index('uq_contacts_one_live_per_customer', table_name='contacts')
