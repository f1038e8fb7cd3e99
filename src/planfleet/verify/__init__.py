"""The gates: what the engine (never the agent) checks after an attempt.

``gates.verify_attempt`` runs them all: commit and diff, files, dependencies, verify commands,
the tests against a baseline, removed and weakened tests.
"""
