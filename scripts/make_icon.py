"""Draw planfleet's plugin icon (.claude-plugin/icon.png) with the standard library only.

Three arrowheads fly up and to the right in formation, each with a fading wake, on a rounded
indigo-to-cyan square. Shapes are polygons filled by scanlines with anti-aliased edges;
the result is a 512x512 RGBA PNG written with zlib and struct. The output is deterministic.

Usage: python scripts/make_icon.py [OUTPUT]
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SIZE = 512
SUBROWS = 4  # vertical samples per pixel; horizontal coverage is computed exactly
CORNER = 104
HEADING = math.radians(-40)  # up and to the right (screen y grows downwards)

Point = tuple[float, float]
Color = tuple[int, int, int]


@dataclass(frozen=True)
class Layer:
    """A filled polygon with one colour (or the background gradient when color is None).

    A layer with a ``fade`` (start point, length) grows transparent against the heading.
    """

    points: Sequence[Point]
    color: Color | None
    alpha: float
    fade: tuple[Point, float] | None = None

    def opacity(self, x: float, y: float) -> float:
        """Return the layer's opacity at pixel (x, y)."""
        if self.fade is None:
            return self.alpha
        (fx, fy), length = self.fade
        behind = -((x - fx) * math.cos(HEADING) + (y - fy) * math.sin(HEADING))
        return self.alpha * min(1.0, max(0.0, 1.0 - behind / length))


def lerp(a: Color, b: Color, t: float) -> Color:
    """Return the colour a fraction ``t`` of the way from ``a`` to ``b``."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def rounded_square(size: float, radius: float, steps: int = 24) -> list[Point]:
    """Return the outline of a square with rounded corners."""
    corners = [
        (size - radius, radius, -90),
        (size - radius, size - radius, 0),
        (radius, size - radius, 90),
        (radius, radius, 180),
    ]
    points = []
    for cx, cy, start in corners:
        for i in range(steps + 1):
            angle = math.radians(start + 90 * i / steps)
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def place(center: Point, scale: float, local: Sequence[Point]) -> list[Point]:
    """Map points given along/across the heading onto the canvas."""
    dx, dy = math.cos(HEADING), math.sin(HEADING)
    return [
        (center[0] + scale * (u * dx - v * dy), center[1] + scale * (u * dy + v * dx))
        for u, v in local
    ]


def craft(center: Point, scale: float, color: Color) -> list[Layer]:
    """Return the wake and the arrowhead of one member of the fleet."""
    dart = [(1.0, 0.0), (-0.75, 0.68), (-0.38, 0.0), (-0.75, -0.68)]
    wake = [(-0.3, 0.24), (-2.8, 0.0), (-0.3, -0.24)]
    (start,) = place(center, scale, [(-0.3, 0.0)])
    return [
        Layer(place(center, scale, wake), (255, 255, 255), 0.5, (start, 2.5 * scale)),
        Layer(place(center, scale, dart), color, 1.0),
    ]


def scene() -> list[Layer]:
    """Return the layers of the icon, back to front."""
    white, amber = (255, 255, 255), (253, 203, 86)
    layers = [Layer(rounded_square(SIZE, CORNER), None, 1.0)]
    # A V formation: the leader in front, two wingmen behind it on either side.
    leader, left, right = place((270, 252), 1.0, [(78, 0), (-62, -112), (-62, 112)])
    layers += craft(left, 60, white)
    layers += craft(right, 60, white)
    layers += craft(leader, 92, amber)
    return layers


def spans(points: Sequence[Point], y: float) -> list[tuple[float, float]]:
    """Return the x intervals where the horizontal line at ``y`` is inside the polygon."""
    crossings = []
    for (x0, y0), (x1, y1) in zip(points, [*points[1:], points[0]], strict=True):
        if (y0 <= y < y1) or (y1 <= y < y0):
            crossings.append(x0 + (y - y0) * (x1 - x0) / (y1 - y0))
    crossings.sort()
    return list(zip(crossings[::2], crossings[1::2], strict=True))


def coverage(points: Sequence[Point], row: int) -> dict[int, float]:
    """Return {x: covered fraction} of the pixels of ``row`` inside the polygon."""
    cover: dict[int, float] = {}
    weight = 1.0 / SUBROWS
    for sub in range(SUBROWS):
        for left, right in spans(points, row + (sub + 0.5) / SUBROWS):
            left, right = max(left, 0.0), min(right, float(SIZE))
            for x in range(int(left), min(math.ceil(right), SIZE)):
                inside = min(right, x + 1.0) - max(left, float(x))
                if inside > 0:
                    cover[x] = cover.get(x, 0.0) + inside * weight
    return cover


def render() -> list[bytearray]:
    """Return the icon as rows of RGBA bytes."""
    top, bottom = (67, 56, 202), (8, 145, 178)
    layers = scene()
    rows = []
    for y in range(SIZE):
        pixels = [[0.0, 0.0, 0.0, 0.0] for _ in range(SIZE)]
        for layer in layers:
            for x, amount in coverage(layer.points, y).items():
                alpha = min(amount, 1.0) * layer.opacity(x + 0.5, y + 0.5)
                color = layer.color or lerp(top, bottom, (x + y) / (2 * (SIZE - 1)))
                pixel = pixels[x]
                # "Over" compositing on premultiplied channels.
                for channel in range(3):
                    pixel[channel] = color[channel] * alpha + pixel[channel] * (1 - alpha)
                pixel[3] = alpha + pixel[3] * (1 - alpha)
        row = bytearray()
        for r, g, b, a in pixels:
            if a > 0:
                row += bytes((round(r / a), round(g / a), round(b / a), round(a * 255)))
            else:
                row += b"\0\0\0\0"
        rows.append(row)
    return rows


def png(rows: list[bytearray]) -> bytes:
    """Return a PNG file holding RGBA ``rows`` (each row with the 'Sub' filter)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = bytearray()
    for row in rows:
        raw.append(1)
        raw += bytes(row[:4]) + bytes((row[i] - row[i - 4]) & 0xFF for i in range(4, len(row)))
    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 9))
        + chunk(b"IEND", b"")
    )


def main(argv: Sequence[str]) -> int:
    default = Path(__file__).resolve().parents[1] / ".claude-plugin" / "icon.png"
    out = Path(argv[0]) if argv else default
    out.write_bytes(png(render()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
