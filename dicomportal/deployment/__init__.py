"""Is this deployment safe to run? The settings the app refuses to start with (``safety``) and the
``dicomportal check`` checklist (``checklist``)."""
