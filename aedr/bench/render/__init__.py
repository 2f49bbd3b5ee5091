"""Drawing a run's results: Markdown, HTML (tables, pages, the report), rich terminal tables and
matplotlib figures. Nothing here computes a figure; it draws what ``aedr.bench.metrics`` and
``aedr.bench.tables`` aggregated."""
