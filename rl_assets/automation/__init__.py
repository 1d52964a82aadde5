"""Automation: the retraining job, schedules and sensors."""
