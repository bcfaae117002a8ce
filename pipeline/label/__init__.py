"""label stage."""
