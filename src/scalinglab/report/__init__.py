"""scalinglab.report — the static HTML page of a study and its figures (matplotlib SVG), torch-free.

It renders a :class:`scalinglab.study.StudyAnalysis` read by attribute and imports only the shared modules:
``study`` builds the record, ``report`` draws it.
"""

from scalinglab.report.page import render_html, write_report

__all__ = ["render_html", "write_report"]
