"""Reproduce the paper's tables: ``grid`` runs methods × datasets × shots × seeds from ``recipes``;
``python -m tools.report`` turns the results into tables and plots."""
