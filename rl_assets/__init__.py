"""rl_assets: a Dagster pipeline that trains, validates and promotes RL trading policies."""
