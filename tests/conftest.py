import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

PROJECT = Path(__file__).resolve().parents[1]
SHARED_MEDIA = PROJECT.parent / "shared" / "media"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not (SHARED_MEDIA / "README.md").is_file():
        pytest.skip(f"real media not present at {SHARED_MEDIA} (a clone without ../shared)")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def ncnn():
    """The local Real-ESRGAN (ncnn) backend, or a skip that gives the real reason it cannot run
    here (package missing, or which system libraries its core lacks). The one gate for every
    test that needs the ncnn path."""
    from montage_ai.upscale.local import ncnn_status

    status = ncnn_status()
    if not status.available:
        pytest.skip(f"local Real-ESRGAN not runnable here: {status.reason}")
    return status


@pytest.fixture(scope="session")
def real_low(shared_media, tmp_path_factory) -> Path:
    """Real footage at low resolution, for the upscalers: 1 s of Sintel at 160x90 with its sound."""
    import subprocess

    from montage_ai.media.ffmpeg import ffmpeg_path

    out = tmp_path_factory.mktemp("real-low") / "sintel_160.mp4"
    subprocess.run([ffmpeg_path(), "-loglevel", "error", "-y", "-i", str(shared_media / "sintel_2s.mp4"), "-t", "1",
                    "-vf", "scale=160:90", "-c:v", "libx264", "-crf", "18", "-c:a", "aac", str(out)], check=True)
    return out


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets the engine cache in a temp folder, never the user's ~/.cache."""
    monkeypatch.setenv("MONTAGE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "engine-cache"))
