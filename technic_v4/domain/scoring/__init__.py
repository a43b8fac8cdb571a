"""Scoring: sub-scores, TechRating, signal and trade plan for every symbol at once (`score`), and the result schema
that defines a valid scan row (`results_schema`)."""
