"""Demo tooling: ``dicomportal demo`` and the localstripe launcher (the ``demo`` extra)."""
