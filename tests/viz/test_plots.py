"""matplotlib pictures: right size, not one colour, the kinds' colours present, the legend
there (SVG text); a missing matplotlib or a bad name is one line."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import memsim.cli as cli
from memsim.errors import ConfigError
from memsim.metrics.compare import compare
from memsim.viz.report import CHART_BANDS, HEAP_KINDS, run_one

from .test_report import make_trace

mpl = pytest.importorskip("matplotlib", reason="matplotlib is not installed (memsim[plot])")
from memsim.viz import plots  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_trace(tmp_path_factory.mktemp("plots") / "t.trace")


@pytest.fixture(scope="module")
def run(trace: str) -> dict:
    return run_one(trace, "glibc")


def _png(path: Path) -> tuple[int, int, set[tuple[int, int, int]]]:
    import matplotlib.image as mpimg

    img = mpimg.imread(str(path))
    h, w = img.shape[:2]
    rgb = (img[:, :, :3] * 255).round().astype(int).reshape(-1, 3)
    return w, h, {tuple(int(v) for v in px) for px in rgb[:: max(1, len(rgb) // 200_000)]}


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _svg_texts(path: Path) -> set[str]:
    root = ET.parse(path).getroot()
    return {"".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")}


def test_heapmap_png(run: dict, tmp_path: Path) -> None:
    out = tmp_path / "heap.png"
    snap = run["snapshots"][-1]
    plots.save(plots.heapmap_figure(snap), out)
    w, h, colours = _png(out)
    assert w >= 600 and h >= 300
    assert len(colours) > 20                        # not one colour, not a blank page
    for kind in ("inuse", "top"):                   # chunks of these kinds are drawn
        assert kind in snap["counts"]
        assert _hex(HEAP_KINDS[kind][0]) in colours
    assert out.stat().st_size < 300_000


def test_heapmap_svg_legend(run: dict, tmp_path: Path) -> None:
    out = tmp_path / "heap.svg"
    snap = max(run["snapshots"], key=lambda s: s["n_mmapped"])
    assert snap["n_mmapped"] > 0
    plots.save(plots.heapmap_figure(snap), out)
    texts = _svg_texts(out)
    for kind in snap["counts"]:
        label = "mmapped chunk" if kind == "mmapped" else HEAP_KINDS[kind][1]
        assert label in texts
    assert any("mmapped chunks, apart from the heap" in t for t in texts)


def test_footprint_png_and_svg(run: dict, tmp_path: Path) -> None:
    png, svg = tmp_path / "f.png", tmp_path / "f.svg"
    plots.save(plots.footprint_figure(run), png)
    plots.save(plots.footprint_figure(run), svg)
    w, h, colours = _png(png)
    assert w >= 600 and h >= 250 and len(colours) > 20
    assert _hex(CHART_BANDS["live"][0]) in colours
    texts = _svg_texts(svg)
    assert {t for _c, t in CHART_BANDS.values()} | {"RSS (VmRSS)"} <= texts


def test_compare_figure(trace: str, tmp_path: Path) -> None:
    recs = [r.as_dict() for r in compare([trace], ["glibc", "buddy"], jobs=1)]
    svg = tmp_path / "c.svg"
    png = tmp_path / "c.png"
    plots.save(plots.compare_figure(recs), svg)
    plots.save(plots.compare_figure(recs), png)
    texts = _svg_texts(svg)
    assert {"glibc", "buddy", "peak footprint", "utilization"} <= texts
    w, h, colours = _png(png)
    assert w >= 600 and len(colours) > 10


def test_bad_suffix(run: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.png or \.svg"):
        plots.save(plots.footprint_figure(run), tmp_path / "x.jpg")


@pytest.mark.parametrize("kind", ["heapmap", "footprint", "compare"])
def test_cli_plot(kind: str, trace: str, tmp_path: Path) -> None:
    out = tmp_path / f"{kind}.png"
    args = ["plot", trace, "--kind", kind, "-o", str(out)]
    if kind == "compare":
        args += ["-a", "glibc,buddy", "-j", "1"]
    if kind == "heapmap":
        args += ["--at", "300"]
    assert cli.main(args) == 0
    w, h, colours = _png(out)
    assert w >= 600 and len(colours) > 10


def test_cli_plot_errors(trace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plot", trace, "--kind", "heapmap", "--allocator", "buddy",
                     "-o", str(tmp_path / "x.png")]) == 2
    assert "no chunk walk" in capsys.readouterr().err
    assert cli.main(["plot", trace, "--kind", "heapmap", "-o", str(tmp_path / "x.gif")]) == 2
    assert ".png or .svg" in capsys.readouterr().err
