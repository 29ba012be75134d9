"""One module per migration, applied in order of their down_revision chain."""
