"""Dagster-free RL core: env, metrics, early stopping and the RLlib training loop."""
