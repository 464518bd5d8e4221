"""The analyst's web page that `synthwatch serve` answers at `/`: plain HTML, CSS and JavaScript,
read with importlib.resources, no build step and nothing loaded from elsewhere."""
