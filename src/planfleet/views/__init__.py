"""What is rendered from the run state into the plan's own files, idempotently.

``render.render_all`` writes checkboxes, checkpoint sections, execution logs, progress files
and index entries; nothing here is read back as truth.
"""
