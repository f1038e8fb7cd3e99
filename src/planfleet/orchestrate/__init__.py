"""The ``planfleet orchestrate`` pipeline and its per-phase step protocol.

Stages: ingest, review, skill matching, research, the user gate, then each phase's implement,
test, review, fix and commit steps, with the engine's own checks after every step.
"""
