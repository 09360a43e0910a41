#!/usr/bin/env python3
"""Build demo media into a folder: `python scripts/make_demo_media.py [FOLDER] [--synthetic]`."""

import sys
from pathlib import Path

from montage_ai.demo.media import build_demo_media

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    demo = build_demo_media(Path(args[0] if args else "demo/media"), prefer_real="--synthetic" not in sys.argv)
    print(demo.model_dump_json(indent=2))
