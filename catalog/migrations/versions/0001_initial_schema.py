"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 06:28:41.752028
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('engine_support',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('engine', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('family', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('device_kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('bits', sa.Integer(), nullable=False),
    sa.Column('min_compute_capability', sa.Float(), nullable=True),
    sa.Column('required_isa', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kernel', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('engine', 'family', 'device_kind', 'bits')
    )
    op.create_table('hardware',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('vendor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('memory_gb', sa.Float(), nullable=True),
    sa.Column('memory_bandwidth_gbps', sa.Float(), nullable=False),
    sa.Column('bf16_tflops', sa.Float(), nullable=True),
    sa.Column('int8_tops', sa.Float(), nullable=True),
    sa.Column('compute_capability', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('isa_flags', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('cores_per_socket', sa.Integer(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hardware', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hardware_name'), ['name'], unique=True)

    op.create_table('model_card',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('family', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('parameters_b', sa.Float(), nullable=False),
    sa.Column('active_parameters_b', sa.Float(), nullable=True),
    sa.Column('layers', sa.Integer(), nullable=False),
    sa.Column('hidden_size', sa.Integer(), nullable=False),
    sa.Column('heads', sa.Integer(), nullable=False),
    sa.Column('kv_heads', sa.Integer(), nullable=False),
    sa.Column('head_dim', sa.Integer(), nullable=False),
    sa.Column('vocab_size', sa.Integer(), nullable=False),
    sa.Column('max_context', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('model_card', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_card_name'), ['name'], unique=True)

    op.create_table('quant_scheme',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('family', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('bits', sa.Integer(), nullable=False),
    sa.Column('group_size', sa.Integer(), nullable=True),
    sa.Column('variant', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('bits_per_weight', sa.Float(), nullable=False),
    sa.Column('engines', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quant_scheme', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quant_scheme_name'), ['name'], unique=True)

    op.create_table('run',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('error_kind', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('error_message', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('hardware', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('tool_versions', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('instance_type',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cloud', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('vcpus', sa.Integer(), nullable=False),
    sa.Column('memory_gib', sa.Float(), nullable=False),
    sa.Column('hardware_id', sa.Integer(), nullable=False),
    sa.Column('accelerator_count', sa.Integer(), nullable=False),
    sa.Column('price_per_hour', sa.Float(), nullable=False),
    sa.Column('spot_price_per_hour', sa.Float(), nullable=True),
    sa.Column('price_date', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('price_source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.ForeignKeyConstraint(['hardware_id'], ['hardware.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('cloud', 'name', 'region')
    )
    with op.batch_alter_table('instance_type', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_type_cloud'), ['cloud'], unique=False)
        batch_op.create_index(batch_op.f('ix_instance_type_name'), ['name'], unique=False)

    op.create_table('quality_result',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('scheme_id', sa.Integer(), nullable=False),
    sa.Column('eval_set', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('perplexity', sa.Float(), nullable=True),
    sa.Column('baseline_perplexity', sa.Float(), nullable=True),
    sa.Column('perplexity_delta_pct', sa.Float(), nullable=True),
    sa.Column('kl_divergence', sa.Float(), nullable=True),
    sa.Column('top1_agreement', sa.Float(), nullable=True),
    sa.Column('bits_per_weight', sa.Float(), nullable=True),
    sa.Column('compression_ratio', sa.Float(), nullable=True),
    sa.Column('engine', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('basis', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('notes', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['model_card.id'], ),
    sa.ForeignKeyConstraint(['scheme_id'], ['quant_scheme.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quality_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quality_result_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quality_result_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quality_result_scheme_id'), ['scheme_id'], unique=False)

    op.create_table('profile',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('scheme_id', sa.Integer(), nullable=False),
    sa.Column('engine', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('hardware_id', sa.Integer(), nullable=False),
    sa.Column('hardware_count', sa.Integer(), nullable=False),
    sa.Column('instance_type_id', sa.Integer(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=False),
    sa.Column('output_tokens', sa.Integer(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('request_rate', sa.Float(), nullable=True),
    sa.Column('output_tokens_per_s', sa.Float(), nullable=False),
    sa.Column('total_tokens_per_s', sa.Float(), nullable=True),
    sa.Column('requests_per_s', sa.Float(), nullable=True),
    sa.Column('ttft_p50_ms', sa.Float(), nullable=True),
    sa.Column('ttft_p95_ms', sa.Float(), nullable=True),
    sa.Column('itl_p50_ms', sa.Float(), nullable=True),
    sa.Column('itl_p95_ms', sa.Float(), nullable=True),
    sa.Column('e2e_p50_ms', sa.Float(), nullable=True),
    sa.Column('peak_memory_gb', sa.Float(), nullable=True),
    sa.Column('error_rate', sa.Float(), nullable=False),
    sa.Column('cost_per_million_tokens', sa.Float(), nullable=True),
    sa.Column('basis', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('engine_version', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('notes', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['hardware_id'], ['hardware.id'], ),
    sa.ForeignKeyConstraint(['instance_type_id'], ['instance_type.id'], ),
    sa.ForeignKeyConstraint(['model_id'], ['model_card.id'], ),
    sa.ForeignKeyConstraint(['scheme_id'], ['quant_scheme.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('profile', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_profile_hardware_id'), ['hardware_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_profile_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_profile_run_id'), ['run_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_profile_scheme_id'), ['scheme_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('profile', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_profile_scheme_id'))
        batch_op.drop_index(batch_op.f('ix_profile_run_id'))
        batch_op.drop_index(batch_op.f('ix_profile_model_id'))
        batch_op.drop_index(batch_op.f('ix_profile_hardware_id'))

    op.drop_table('profile')
    with op.batch_alter_table('quality_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quality_result_scheme_id'))
        batch_op.drop_index(batch_op.f('ix_quality_result_run_id'))
        batch_op.drop_index(batch_op.f('ix_quality_result_model_id'))

    op.drop_table('quality_result')
    with op.batch_alter_table('instance_type', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_type_name'))
        batch_op.drop_index(batch_op.f('ix_instance_type_cloud'))

    op.drop_table('instance_type')
    op.drop_table('run')
    with op.batch_alter_table('quant_scheme', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quant_scheme_name'))

    op.drop_table('quant_scheme')
    with op.batch_alter_table('model_card', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_card_name'))

    op.drop_table('model_card')
    with op.batch_alter_table('hardware', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_hardware_name'))

    op.drop_table('hardware')
    op.drop_table('engine_support')

