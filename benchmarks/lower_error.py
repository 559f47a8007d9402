"""Exit 0 when the first checkpoint's clean error (on its card's test set) is lower than the second's: the queue
ships a further-trained model only when it is better than the one it started from."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tttgui.models.checkpoint import read_checkpoint  # noqa: E402


def main(new: str, old: str) -> int:
    a, b = ((read_checkpoint(p).get("meta") or {}) for p in (new, old))
    if a.get("test_images") != b.get("test_images") or None in (a.get("clean_error"), b.get("clean_error")):
        print(f"{new} and {old} were not measured on the same test set: not compared", file=sys.stderr)
        return 2
    print(f"clean error {a['clean_error']:.2f} % ({new}) vs {b['clean_error']:.2f} % ({old})")
    return 0 if a["clean_error"] < b["clean_error"] else 1


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
