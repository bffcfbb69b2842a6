"""Reports over one or more runs: Markdown, HTML and figures (matplotlib, Agg backend)."""
from harness.report.writer import write_report

__all__ = ["write_report"]
