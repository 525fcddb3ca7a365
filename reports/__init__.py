"""Reports: statistics, patch metadata, renderers (text, Markdown, HTML, JSON) and plots."""
