"""The hardware comparison report in a real browser: a float64 run, a float32 run and a JAX-backend run of the toy
experiment's smoke tier, one report, rendered by headless Chromium (Debian's package): every section present, the
tables and the embedded figures rendered, the page self-contained, and a screenshot that is not blank."""
import json
import re
import shutil
import subprocess

import matplotlib.image
import numpy as np
import pytest

from tests.harness.test_cli import harness, harness_here

CHROMIUM = next(filter(None, (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome"))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine: `sudo apt-get install chromium` "
                                                         "(Debian's package) to render the report in a headless browser")
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars")
SECTIONS = ("Runs", "Environments", "Claims", "Metric families", "Time per phase",
            "Precision: float32 (B) against float64 (A)", "Figures", "Run details")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  root = tmp_path_factory.mktemp("report")
  runs = {"float64": [], "float32": ["--dtype=float32"], "jax": []}
  for name, extra in runs.items():   # the TensorFlow runs in this process, the JAX-only one in its own
    args = ("run", "--experiment=toy", "--tier=smoke", f"--output_dir={root / name}", "--quiet", *extra)
    result = harness(*args, jax_only=True) if name == "jax" else harness_here(*args)
    assert result.returncode == 0, result.stdout + result.stderr
  refs = root / "refs"
  assert harness_here("bless", str(root / "float64"), "--reason=reference for the report test",
                      f"--references={refs}").returncode == 0
  result = harness_here("report", *(str(root / name) for name in runs), f"--report_dir={root / 'report'}",
                        f"--references={refs}", f"--baseline={root / 'float64'}")
  assert result.returncode == 0, result.stderr
  return root / "report"


def test_every_section_is_in_both_renderings(report):
  markdown, page = (report / "report.md").read_text(), (report / "report.html").read_text()
  for section in SECTIONS:
    assert f"#{'' if section in ('Runs', 'Environments', 'Run details') else '#'} {section}" in markdown, section
    assert f">{section}" in page, section
  assert "| A (baseline) |" in markdown
  assert "| **Keras backend** | **tensorflow** | **tensorflow** | **jax** |" in markdown   # the fields that differ
  assert "| **precision** | **float64** | **float32** | **float64** |" in markdown
  # self-contained: figures embedded, nothing fetched from elsewhere
  assert 'src="data:image/png;base64,' in page and not re.search(r'(src|href)="(https?:|//)', page)


def test_tables_and_figures_render_in_headless_chromium(report, tmp_path):
  url = (report / "report.html").as_uri()
  dom = subprocess.run([CHROMIUM, *BROWSER_FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=120,
                       check=True).stdout
  rendered = json.loads(re.search(r'data-rendered="([^"]*)"', dom).group(1).replace("&quot;", '"'))
  assert rendered["tables"] >= 8
  assert rendered["figures"] >= 3 and rendered["figures_loaded"] == rendered["figures"], rendered
  shot = tmp_path / "report.png"
  subprocess.run([CHROMIUM, *BROWSER_FLAGS, "--window-size=1400,2400", f"--screenshot={shot}", url],
                 capture_output=True, text=True, timeout=120, check=True)
  pixels = matplotlib.image.imread(str(shot))
  assert pixels.shape[:2] == (2400, 1400)
  assert float(np.std(pixels[..., :3])) > 0.05          # text, tables and colour, not a blank page
  greens = np.all(np.abs(pixels[..., :3] - np.array([0xe6, 0xf4, 0xea]) / 255) < 0.02, axis=-1)
  assert greens.mean() > 0.002                           # the verdict cells' colour made it to the screen
