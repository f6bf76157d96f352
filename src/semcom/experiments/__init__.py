"""Experiments: the sweep (schemes x rates x channels) and the report."""
