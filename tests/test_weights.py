"""`lsdm weights`: the listing, and `fetch` against a local HTTP server on 127.0.0.1 (never the internet).

The server serves a small file whose SHA-256 each test pins through the injectable table
($LSDM_WEIGHTS_TABLE); a good download, a wrong hash, a truncated transfer, a refused connection,
an HTTP error and `--from` with good and bad files, each failure exiting 2 with the URL (or file) in
the message and nothing left in the cache folders.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.processes import free_port, run
from support.weights import write_stand_in_inception

from lsdm import weights
from lsdm.evaluation import features
from lsdm.pipeline import cli

PAYLOAD = bytes(range(256)) * 1200  # 300 KiB: several reads of a socket, below one CHUNK
PIN = hashlib.sha256(PAYLOAD).hexdigest()
ALEX = "alexnet-owt-7be5be79.pth"  # torchvision's name, as lsdm looks for it


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path not in ("/weights.bin", "/truncated.bin"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        # /truncated.bin: promise every byte, send a third, close (HTTP/1.0: the connection ends here)
        self.wfile.write(PAYLOAD if self.path == "/weights.bin" else PAYLOAD[: len(PAYLOAD) // 3])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Empty user caches (lsdm's and torch hub's) under tmp_path, no params.yaml (the defaults)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def use_table(tmp_path: Path, monkeypatch, **entries) -> None:
    """Point $LSDM_WEIGHTS_TABLE at `entries` (name -> url/sha256/prefix overrides)."""
    path = tmp_path / "table.json"
    path.write_text(json.dumps({k.replace("_", "-"): v for k, v in entries.items()}))
    monkeypatch.setenv(weights.TABLE_ENV, str(path))


def cache_files(tmp_path: Path) -> list[Path]:
    """Everything in both caches, temporary files included."""
    return sorted(p for d in (tmp_path / "xdg", tmp_path / "torch") if d.exists() for p in d.rglob("*") if p.is_file())


def fetch(*args: str) -> int:
    return weights.main(["fetch", *args, "--no-progress"])


def test_the_table_is_the_libraries_own_urls_and_names(cache):
    """The URLs are clean-fid's and torchvision's (read from them, not copied), the files go where
    the evaluate stage looks, and torchvision's hash prefix is read from the name as torch.hub does."""
    from cleanfid.downloads_helper import inception_url
    from torchvision.models import AlexNet_Weights

    t = weights.table()
    assert t["inception"].url == inception_url and t["inception"].url.startswith("https://")
    inception = cache / "xdg/lsdm" / features.INCEPTION_FILE
    assert t["inception"].dest == features.inception_dirs()[0] / features.INCEPTION_FILE == inception
    assert t["inception"].sha256 is None and t["inception"].prefix is None  # clean-fid publishes none
    assert t["lpips-alex"].url == AlexNet_Weights.IMAGENET1K_V1.url
    assert t["lpips-alex"].dest == features.lpips_backbone_file("alex") == cache / "torch/hub/checkpoints" / ALEX
    assert t["lpips-alex"].prefix == "7be5be79" and t["lpips-vgg"].prefix and t["lpips-squeeze"].prefix
    assert weights.targets("all", "squeeze") == ["inception", "lpips-squeeze"]
    assert weights.targets("lpips", "alex") == ["lpips-alex"]


def test_listing_says_what_is_missing_where_and_how_to_get_it(cache, capsys):
    assert cli.main(["weights"]) == 0  # dispatched like `lsdm sweep`
    out = capsys.readouterr().out
    entries = [line.split(":")[0] for line in out.splitlines() if not line.startswith((" ", "note:", "After a fetch"))]
    status = [line.split("status:")[1].split(":")[0].strip() for line in out.splitlines() if "  status:" in line]
    assert entries == ["inception", "lpips-alex", "lpips-vgg", "lpips-squeeze"], entries
    assert status == ["MISSING"] * 4  # the empty caches hold none of the four files
    assert out.count("MISSING") == 4 and out.count("shipped in the lpips package: present") == 3  # with lpips
    assert "lsdm weights fetch inception" in out and "lsdm weights fetch lpips" in out
    assert str(cache / "xdg/lsdm" / features.INCEPTION_FILE) in out
    assert str(cache / "torch/hub/checkpoints" / ALEX) in out
    assert "https://nvlabs-fi-cdn.nvidia.com/" in out and "https://download.pytorch.org/models/" + ALEX in out
    assert "publishes no hash" in out and "prefix 7be5be79" in out  # what can and cannot be checked


def test_listing_checks_what_is_present(cache, capsys):
    hub = cache / "torch/hub/checkpoints"
    hub.mkdir(parents=True)
    (hub / ALEX).write_bytes(PAYLOAD)  # a file under torchvision's name whose hash does not fit it
    write_stand_in_inception(hub / features.INCEPTION_FILE)  # found in torch hub's folder, second choice
    assert weights.main([]) == 0
    out = capsys.readouterr().out
    assert f"present at {hub / ALEX}, but WRONG" in out and "does not start with 7be5be79" in out
    assert f"present at {hub / features.INCEPTION_FILE}" in out and "nothing to check it against" in out


def test_fetch_downloads_checks_and_installs(cache, server, monkeypatch, capsys):
    use_table(
        cache,
        monkeypatch,
        inception={"url": f"{server}/weights.bin", "sha256": PIN},
        lpips_alex={"url": f"{server}/weights.bin", "prefix": PIN[:8]},
    )
    assert weights.main(["fetch", "all"]) == 0  # with its progress bar
    err = capsys.readouterr().err
    assert "100%" in err and f"SHA-256 {PIN}" in err
    inception, alex = cache / "xdg/lsdm" / features.INCEPTION_FILE, cache / "torch/hub/checkpoints" / ALEX
    assert inception.read_bytes() == PAYLOAD and alex.read_bytes() == PAYLOAD
    # nothing beside them but the record of the prefix-checked file's full hash; no temporary file
    assert cache_files(cache) == sorted([inception, alex, alex.with_name(ALEX + ".sha256")])
    assert weights.recorded(alex) == PIN
    assert features.find_inception(None) == (inception.resolve(), None)  # where the evaluate stage looks
    # a second fetch finds them in place and checked: no download (the URL now refuses)
    use_table(cache, monkeypatch, inception={"url": f"http://127.0.0.1:{free_port()}/x", "sha256": PIN})
    assert fetch("inception") == 0 and "already present" in capsys.readouterr().err


@pytest.mark.parametrize(
    "case, entry, says",
    [
        ("wrong hash", {"path": "/weights.bin", "sha256": "0" * 64}, f"its SHA-256 is {PIN}, not the pinned SHA-256"),
        (
            "truncated",
            {"path": "/truncated.bin", "sha256": PIN},
            f"after {len(PAYLOAD) // 3} of the {len(PAYLOAD)} bytes",
        ),
        ("refused", {"port": "refused", "sha256": PIN}, "could not reach"),
        ("HTTP 404", {"path": "/gone.bin", "sha256": PIN}, "answered HTTP 404"),
    ],
)
def test_a_failed_fetch_exits_2_names_the_url_and_leaves_nothing(cache, server, monkeypatch, capsys, case, entry, says):
    url = f"http://127.0.0.1:{free_port()}/weights.bin" if "port" in entry else server + entry["path"]
    use_table(cache, monkeypatch, inception={"url": url, "sha256": entry["sha256"]})
    assert fetch("inception") == 2, case
    err = capsys.readouterr().err
    assert says in err and url in err and "lsdm weights: error:" in err, err
    assert "nothing was" in err or "Not installed" in err
    if case != "wrong hash":
        assert "--from FILE" in err  # what to do without a network
    assert cache_files(cache) == []  # no temporary file, no half file, no record


def test_a_failed_fetch_keeps_the_file_already_there(cache, server, monkeypatch):
    """A file in place that fails its check is replaced only by one that passes."""
    alex = cache / "torch/hub/checkpoints" / ALEX
    alex.parent.mkdir(parents=True)
    alex.write_bytes(b"old")
    use_table(cache, monkeypatch, lpips_alex={"url": f"{server}/weights.bin"})  # torchvision's prefix: no match
    assert fetch("lpips") == 2
    assert alex.read_bytes() == b"old" and cache_files(cache) == [alex]


def test_fetch_from_a_local_file(cache, monkeypatch, capsys):
    use_table(cache, monkeypatch, inception={"url": "http://127.0.0.1:9/unused", "sha256": PIN})
    bad, good = cache / "downloads/bad.pt", cache / "downloads/good.pt"
    bad.parent.mkdir()
    bad.write_bytes(PAYLOAD[:-1] + b"x")
    good.write_bytes(PAYLOAD)
    assert fetch("inception", "--from", str(bad)) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not the pinned SHA-256" in err and cache_files(cache) == []
    assert fetch("inception", "--from", str(cache / "downloads/none.pt")) == 2 and cache_files(cache) == []
    assert fetch("all", "--from", str(good)) == 2  # one file, one target
    assert fetch("inception", "--from", str(good)) == 0
    assert (cache / "xdg/lsdm" / features.INCEPTION_FILE).read_bytes() == PAYLOAD == good.read_bytes()


def test_without_a_published_hash_the_installed_one_is_recorded(cache, server, monkeypatch, capsys):
    """clean-fid publishes no hash for its Inception file: fetch installs it, records its SHA-256,
    and the listing then notices a change. `--sha256` checks a value the user trusts."""
    use_table(cache, monkeypatch, inception={"url": f"{server}/weights.bin"})
    assert fetch("inception", "--sha256", "f" * 64) == 2 and cache_files(cache) == []
    assert fetch("inception") == 0
    inception = cache / "xdg/lsdm" / features.INCEPTION_FILE
    assert weights.recorded(inception) == PIN
    assert record_line(inception) == f"{PIN}  {features.INCEPTION_FILE}"  # sha256sum -c reads it
    capsys.readouterr()
    assert weights.main([]) == 0 and "matches the SHA-256 recorded at install" in capsys.readouterr().out
    inception.write_bytes(b"changed")
    assert weights.main([]) == 0 and "CHANGED since it was installed" in capsys.readouterr().out


def record_line(dest: Path) -> str:
    return weights.record_file(dest).read_text().strip()


def test_a_bad_table_override_is_an_error(cache, monkeypatch, capsys):
    use_table(cache, monkeypatch, inceptoin={"url": "x"})
    assert fetch("inception") == 2 and "inceptoin" in capsys.readouterr().err


def test_run_report_names_the_command():
    from lsdm.reports.run_report import unavailable_notes

    notes = " ".join(
        unavailable_notes(
            {"fid_inception": None, "inception_reason": "r", "lpips_diversity": None, "lpips_reason": "r"}
        )
    )
    assert "`lsdm weights fetch inception`" in notes and "`lsdm weights fetch lpips`" in notes


@pytest.mark.slow
def test_a_stand_in_installed_with_from_gives_the_report_its_inception_fid(tiny_repro, tmp_path):
    """The whole path a user takes: `lsdm weights fetch inception --from FILE` (a stand-in TorchScript
    network with the Inception interface, pinned for the run), `lsdm evaluate`, `lsdm report`."""
    from test_evaluate import workdir

    from lsdm.evaluation.registry import read_results

    standin = tmp_path / "downloads/inception.pt"
    standin.parent.mkdir()
    write_stand_in_inception(standin)
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"inception": {"sha256": hashlib.sha256(standin.read_bytes()).hexdigest()}}))
    env = {
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        "TORCH_HOME": str(tmp_path / "torch"),
        weights.TABLE_ENV: str(table),
    }
    work = workdir(tiny_repro, tmp_path / "work", seeds=[3])
    run(["lsdm", "weights", "fetch", "inception", "--from", str(standin)], work, extra_env=env)
    run(["lsdm", "evaluate"], work, extra_env=env)
    e = read_results(work / "results/evaluate")["eval"]
    assert isinstance(e["fid_inception"], float) and e["inception_reason"] is None
    assert e["inception_weights"] == str((tmp_path / "xdg/lsdm" / features.INCEPTION_FILE).resolve())
    run(["lsdm", "report"], work, extra_env=env)
    text = (work / "reports/report.md").read_text()
    assert "Inception FID/KID were not computed" not in text and "`eval.fid_inception`" in text
    assert "LPIPS was not computed" in text and "`lsdm weights fetch lpips`" in text
    listing = run(["lsdm", "weights"], work, extra_env=env).stdout
    assert "matches the pinned SHA-256" in listing
