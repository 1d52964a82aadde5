"""Promotion: the gate, its blocking checks and the champion registry."""
