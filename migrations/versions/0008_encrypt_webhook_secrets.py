"""Webhook signing secrets encrypted at rest.

``webhook_secrets.secret`` and ``previous_secret`` held the ``whsec_…`` secrets in plaintext:
whoever read the table (a backup, a replica, a leaked dump) could sign webhooks as any tenant.
They now hold ``v1:<Fernet token>`` under a key derived from ``VISIONGATE_SECRET_KEY``
(core/secretbox.py), so this migration reads the secret key from the settings, like every
process. Values already carrying the ``v1:`` prefix are left alone: running it again, or on a
database whose secrets were written encrypted, changes nothing. The columns become TEXT (a
token is about 170 characters, the old columns held 100).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from core import secretbox
from core.settings import get_settings

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

SECRETS = sa.table('webhook_secrets', sa.column('tenant_id', sa.String),
                   sa.column('secret', sa.Text), sa.column('previous_secret', sa.Text))


def _convert(transform) -> None:  # noqa: ANN001 - callable(str) -> str | None
    bind = op.get_bind()
    rows = bind.execute(sa.select(SECRETS.c.tenant_id, SECRETS.c.secret, SECRETS.c.previous_secret)).all()
    for tenant_id, secret, previous in rows:
        values = {}
        for name, value in (('secret', secret), ('previous_secret', previous)):
            new = transform(value) if value is not None else None
            if new is not None and new != value:
                values[name] = new
        if values:
            bind.execute(SECRETS.update().where(SECRETS.c.tenant_id == tenant_id).values(**values))


def upgrade() -> None:
    with op.batch_alter_table('webhook_secrets', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sa.String(length=100), type_=sa.Text(),
                              existing_nullable=False)
        batch_op.alter_column('previous_secret', existing_type=sa.String(length=100), type_=sa.Text(),
                              existing_nullable=True)
    key = get_settings().secret_key
    _convert(lambda value: value if secretbox.is_sealed(value) else secretbox.seal(value, key))


def downgrade() -> None:
    key = get_settings().secret_key
    _convert(lambda value: secretbox.unseal(value, key))
    with op.batch_alter_table('webhook_secrets', schema=None) as batch_op:
        batch_op.alter_column('secret', existing_type=sa.Text(), type_=sa.String(length=100),
                              existing_nullable=False)
        batch_op.alter_column('previous_secret', existing_type=sa.Text(), type_=sa.String(length=100),
                              existing_nullable=True)
