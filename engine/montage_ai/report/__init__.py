"""Showing the edit: storyboard.png, timeline.png and report.html after a run, progress and events
while it runs, and the settings of a fast --preview render."""

from .chart import Chart, make_timeline_chart
from .page import make_report, make_report_from_folder
from .preview import preview_settings, preview_spec
from .progress import Progress, as_progress
from .storyboard import SegmentView, Storyboard, make_storyboard, segment_views

__all__ = [
    "Chart", "Progress", "SegmentView", "Storyboard", "as_progress", "make_report", "make_report_from_folder",
    "make_storyboard", "make_timeline_chart", "preview_settings", "preview_spec", "segment_views",
]
