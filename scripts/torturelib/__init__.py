"""The reliability suite behind ``scripts/torture.py``: one module per scenario."""
