"""Operators named in issues: dictionaries (``dictionary``), extraction (``extract``), the hand-made
gold and its scores (``gold``), the per-issue store table (``store``) and the CLI (``commands``)."""
