"""A wheel of dicomportal carries its templates, static files, migrations, help articles and the
viewer's demo studies.

Builds the wheel from a copy of the source tree, installs it into a fresh virtual environment
(offline: no download, no build isolation) and, from a directory outside the source tree, renders
pages from the installed package against a new SQLite database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "dicomportal", "templates", "static", "migrations")
URLS = ("/plans/", "/static/vendor/htmx/htmx.min.js", "/help/", "/auth/login", "/viewer/demo")

CHECK_INSTALLED_APP = """
import json, sys
from pathlib import Path

import dicomportal
from dicomportal import create_app
from dicomportal.billing.catalog import seed_catalog
from flask_migrate import upgrade

here = Path.cwd()
app = create_app(
    {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{here / 'wheel.db'}", "TESTING": True},
    instance_path=str(here / "instance"),
)
with app.app_context():
    upgrade()
    seed_catalog()
client = app.test_client()
statuses = {url: client.get(url).status_code for url in sys.argv[1:]}

# An invoice PDF through the app's own Jinja environment: document templates, stylesheet, fonts, logo.
import facturx
from dicomportal.documents import jinja_renderer, render_pdf, samples
pdf = render_pdf(samples.renewal_invoice(), jinja_renderer(app.jinja_env))
invoice = {"header": pdf[:5].decode(), "attachment": facturx.get_xml_from_pdf(pdf)[0]}
print(json.dumps({"package": dicomportal.__file__, "statuses": statuses, "invoice": invoice}))
"""


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command; on failure show what it printed."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def source_files() -> list[Path]:
    """The files a clone would have: tracked or new-but-not-ignored (``git ls-files``), so an empty
    or ignored folder here cannot hide a packaging mistake; outside git, everything under SOURCES."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *SOURCES],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if listed.returncode == 0 and listed.stdout:
        return [Path(name) for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]
    return [f.relative_to(ROOT) for name in SOURCES for f in (ROOT / name).rglob("*") if f.is_file()] + [
        Path(name) for name in SOURCES if (ROOT / name).is_file()
    ]


def build_wheel(tmp_path: Path) -> Path:
    """``python -m build --wheel`` on a copy of the tree, so nothing is written into the checkout."""
    source = tmp_path / "src"
    for relative in source_files():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, source / relative)
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(source)]
    run(build, tmp_path)
    (wheel,) = dist.glob("dicomportal-*.whl")
    return wheel


def fresh_venv_with(wheel: Path, target: Path) -> Path:
    """A new virtual environment holding only the wheel; dependencies come from this environment's
    site-packages, listed after the new one so the wheel's ``dicomportal`` wins."""
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-index", "--no-deps"]
    run([*pip, str(wheel)], target)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    new_site = Path(run([str(python), "-c", purelib], target).strip())
    # Plain directory lines: these folders' own .pth files (the editable install's hook) stay inactive.
    (new_site / "zz_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def test_wheel_ships_templates_static_migrations_help_articles_and_document_assets(tmp_path: Path) -> None:
    python = fresh_venv_with(build_wheel(tmp_path), tmp_path / "venv")
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL")}

    out = run([str(python), "-c", CHECK_INSTALLED_APP, *URLS], workdir, env)
    result = json.loads(out.strip().splitlines()[-1])

    assert Path(result["package"]).is_relative_to(tmp_path / "venv"), result["package"]
    assert result["statuses"] == {url: 200 for url in URLS}
    assert result["invoice"] == {"header": "%PDF-", "attachment": "factur-x.xml"}


def settings_read_by_config() -> set[str]:
    """The environment variables ``dicomportal/config.py`` reads."""
    source = (ROOT / "dicomportal" / "config.py").read_text()
    return set(re.findall(r'(?:environ\.get|_bool|_int)\(\s*"([A-Z][A-Z0-9_]*)"', source))


def test_readme_documents_every_setting_config_reads() -> None:
    readme = (ROOT / "README.md").read_text()
    table = {m for m in re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", readme, flags=re.MULTILINE)}

    assert settings_read_by_config() >= {"DATABASE_URL", "SECRET_KEY", "STRIPE_SECRET_KEY"}
    assert sorted(settings_read_by_config() - table) == [], "add these to README.md, Configuration"
