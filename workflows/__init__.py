"""Deterministic workflow code only. Imports durabatch.models and schedule logic, nothing with I/O."""
