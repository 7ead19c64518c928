"""Figures: the static figures (`plots`, matplotlib, PNG + PDF) and the rotatable 3-D pages
(`interactive`, plotly). They draw analysis tables and never compute scores.
"""
