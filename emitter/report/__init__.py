"""HTML reports of runs, validations and scores (bokeh, self-contained)."""
