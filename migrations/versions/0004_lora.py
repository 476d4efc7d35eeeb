"""tailored generation (LoRA): the gateway's per-tenant records of Bria tailored-generation
projects, datasets, dataset images and models, each with the upstream Bria id it mirrors

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _stamps() -> list[sa.Column]:
    return [sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False)]


def upgrade() -> None:
    op.create_table('lora_projects',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('upstream_id', sa.String(length=64), nullable=False),
    sa.Column('project_name', sa.String(length=255), nullable=False),
    sa.Column('project_description', sa.Text(), nullable=True),
    sa.Column('ip_name', sa.String(length=255), nullable=True),
    sa.Column('ip_description', sa.Text(), nullable=True),
    sa.Column('ip_medium', sa.String(length=32), nullable=False),
    sa.Column('ip_type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    *_stamps(),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_lora_projects_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lora_projects'))
    )
    with op.batch_alter_table('lora_projects', schema=None) as batch_op:
        batch_op.create_index('ix_lora_projects_tenant_id', ['tenant_id', 'id'], unique=False)

    op.create_table('lora_datasets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('upstream_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('caption_prefix', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('captions_update_status', sa.String(length=16), nullable=True),
    *_stamps(),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_lora_datasets_tenant_id_tenants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['lora_projects.id'], name=op.f('fk_lora_datasets_project_id_lora_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lora_datasets'))
    )
    with op.batch_alter_table('lora_datasets', schema=None) as batch_op:
        batch_op.create_index('ix_lora_datasets_tenant_project', ['tenant_id', 'project_id'], unique=False)

    op.create_table('lora_images',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('upstream_id', sa.String(length=64), nullable=False),
    sa.Column('image_name', sa.String(length=255), nullable=True),
    sa.Column('source_url', sa.Text(), nullable=True),
    sa.Column('caption', sa.Text(), nullable=True),
    sa.Column('caption_source', sa.String(length=16), nullable=True),
    sa.Column('format', sa.String(length=16), nullable=True),
    sa.Column('width', sa.Integer(), nullable=True),
    sa.Column('height', sa.Integer(), nullable=True),
    sa.Column('size_bytes', sa.Integer(), nullable=True),
    *_stamps(),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_lora_images_tenant_id_tenants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['dataset_id'], ['lora_datasets.id'], name=op.f('fk_lora_images_dataset_id_lora_datasets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lora_images'))
    )
    with op.batch_alter_table('lora_images', schema=None) as batch_op:
        batch_op.create_index('ix_lora_images_tenant_dataset', ['tenant_id', 'dataset_id'], unique=False)

    op.create_table('lora_models',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=True),
    sa.Column('upstream_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('training_version', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('training_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('training_finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status_checked_at', sa.DateTime(timezone=True), nullable=True),
    *_stamps(),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_lora_models_tenant_id_tenants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['lora_projects.id'], name=op.f('fk_lora_models_project_id_lora_projects'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['dataset_id'], ['lora_datasets.id'], name=op.f('fk_lora_models_dataset_id_lora_datasets'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lora_models'))
    )
    with op.batch_alter_table('lora_models', schema=None) as batch_op:
        batch_op.create_index('ix_lora_models_tenant_project', ['tenant_id', 'project_id'], unique=False)
        batch_op.create_index('ix_lora_models_status', ['status'], unique=False)


def downgrade() -> None:
    for table, indexes in (('lora_models', ('ix_lora_models_status', 'ix_lora_models_tenant_project')),
                           ('lora_images', ('ix_lora_images_tenant_dataset',)),
                           ('lora_datasets', ('ix_lora_datasets_tenant_project',)),
                           ('lora_projects', ('ix_lora_projects_tenant_id',))):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in indexes:
                batch_op.drop_index(name)
        op.drop_table(table)
