"""The plugin and marketplace manifests, the icon, and the real `claude plugin validate`."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from planfleet import __version__

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = REPO_ROOT / ".claude-plugin"
CLAUDE_VERSION = "2.1.328"


def load(name: str) -> Any:
    return json.loads((MANIFESTS / name).read_text(encoding="utf-8"))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Return the (type, payload) chunks of a PNG file, checking signature and CRCs."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + payload) == crc, kind
        chunks.append((kind, payload))
        pos += 12 + length
    return chunks


def find_claude() -> str | None:
    """Return the Claude Code CLI to validate with: $PLANFLEET_CLAUDE, the CI cache, PATH."""
    if os.environ.get("PLANFLEET_CLAUDE"):
        return os.environ["PLANFLEET_CLAUDE"]
    # HOME is a temporary folder during tests; the CI cache lives under the real one.
    real_home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    cache = Path(os.environ.get("PLANFLEET_CI_CACHE", real_home / ".cache" / "planfleet-ci"))
    cached = cache / f"claude-{CLAUDE_VERSION}" / "node_modules" / ".bin" / "claude"
    if os.access(cached, os.X_OK):
        return str(cached)
    return shutil.which("claude")


def test_manifests_agree_with_the_package() -> None:
    plugin, market = load("plugin.json"), load("marketplace.json")
    assert plugin["name"] == "planfleet"
    assert plugin["version"] == __version__
    assert plugin["license"] == "MIT"
    assert plugin["author"]["name"]
    assert plugin["description"]
    assert all(isinstance(k, str) and k for k in plugin["keywords"])
    assert market["owner"]["name"]
    assert market["description"]
    (entry,) = market["plugins"]
    assert entry["name"] == plugin["name"]
    assert entry["source"] == "./"
    assert entry["version"] == __version__
    assert entry["description"] == plugin["description"]


def test_icon_is_a_512_pixel_png() -> None:
    icon = (REPO_ROOT / load("plugin.json")["icon"]).resolve()
    assert icon == MANIFESTS / "icon.png"
    data = icon.read_bytes()
    assert len(data) < 2 * 1024 * 1024
    chunks = png_chunks(data)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height, depth, color_type = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (width, height, depth, color_type) == (512, 512, 8, 6)  # RGBA, 8 bits a channel
    pixels = zlib.decompress(b"".join(payload for kind, payload in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + width * 4)


def test_icon_script_reproduces_the_icon(tmp_path: Path) -> None:
    out = tmp_path / "icon.png"
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "make_icon.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert out.read_bytes() == (MANIFESTS / "icon.png").read_bytes()


def test_claude_plugin_validate_strict_passes(tmp_path: Path) -> None:
    claude = find_claude()
    if claude is None:
        pytest.skip("no Claude Code CLI: set PLANFLEET_CLAUDE or run .ci/run, which installs it")
    env = dict(os.environ)
    env["CLAUDE_CONFIG_DIR"] = str(tmp_path / "claude-config")
    env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
    result = subprocess.run(
        [claude, "plugin", "validate", "--strict", "--json", str(REPO_ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["success"] is True
    assert report["manifest"]["type"] == "marketplace"
    assert report["manifest"]["errors"] == []
    assert report["manifest"]["warnings"] == []
    finding_codes = [f["code"] for f in report["directory"]["findings"]]
    assert "ICON_MISSING" not in finding_codes
    assert "LICENSE_MISSING" not in finding_codes
