import os, sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ESP_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(Path(__file__).parent))
