"""Montage AI: beat-cut montages from a folder of clips and a song.

Data flows one way: files -> MediaInfo / MusicAnalysis / ClipAnalysis -> EditPlan ->
Segments -> OTIO Timeline -> MP4. The renderer knows only the Timeline.
"""

__version__ = "0.1.0"
