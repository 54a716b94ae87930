"""The published website: immutable releases of leaderboards built from validated records."""
