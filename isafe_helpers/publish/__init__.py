"""Publishing: disclosure control, tables, figures, prose, the executive summary and the book."""
