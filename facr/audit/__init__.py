"""Interventional audits of faithfulness: metrics on the latent, statistics, reports."""
