"""The CLI progress bar is tqdm's (issue 19 item 5): counts, text, and nothing written when disabled."""
import io

from tttgui.progress import Progress


def test_progress_is_tqdm_and_quiet_when_disabled():
    out = io.StringIO()
    with Progress(4, "eval", stream=out, every=0) as bar:
        bar.update(3, "fog-5 ttt")
        assert bar.n == 3 and type(bar.bar).__module__.startswith("tqdm")
    text = out.getvalue()
    assert "eval" in text and "3/4" in text and "fog-5 ttt" in text
    quiet = io.StringIO()
    with Progress(4, "eval", stream=quiet, enabled=False) as bar:
        bar.update(4)
    assert quiet.getvalue() == ""
