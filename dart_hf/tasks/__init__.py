"""Controlled tasks for studying DART where the ground truth is known (see `docs/study.md`)."""
