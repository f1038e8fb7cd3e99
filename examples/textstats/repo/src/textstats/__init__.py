"""textstats: small text statistics (built by the planfleet example plan)."""
