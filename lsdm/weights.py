"""`lsdm weights`: the pretrained files the optional metrics need, and the one command that downloads them.

The evaluate stage never downloads (lsdm/evaluation/features.py): a metric whose weights are not on
disk is recorded as null with the reason, so offline runs and CI stay reproducible. A researcher with
internet access still wants the standard Inception FID without hunting for files, and wants what
arrives verified: the Inception file is TorchScript, code that runs when it is loaded. So fetching is
an explicit command of its own, and nothing else in lsdm downloads:

    lsdm weights                               each file: which metric needs it, where lsdm looks, present?
    lsdm weights fetch [inception|lpips|all]   download from upstream into the cache lsdm already reads
    lsdm weights fetch inception --from FILE   install a file downloaded elsewhere, with the same check

Where files go is not decided here: `inception_dirs()[0]` ($XDG_CACHE_HOME/lsdm) and
`lpips_backbone_file()` ($TORCH_HOME/hub/checkpoints/<torchvision's name>), the places the loaders of
lsdm/evaluation/features.py look. Each file is written to a temporary file in its destination folder
and renamed into place only once checked, so a failed or interrupted fetch leaves nothing a later
`evaluate` could load. No network, a partial transfer or a hash mismatch ends with exit status 2, the
URL, and what to do.

The hashes, and why they are what they are:
- torchvision publishes the first hex digits of each checkpoint's SHA-256 in its file name
  (`alexnet-owt-7be5be79.pth`); torch.hub reads them with `HASH_REGEX` and torchvision loads with
  `check_hash=True`. That prefix is checked here the same way; no full SHA-256 is published. Eight hex
  digits catch a corrupt, truncated or wrong file, not a determined forgery (32 bits).
- clean-fid publishes no hash for `inception-2015-12-05.pt` (`cleanfid/downloads_helper.py` fetches
  it unchecked), so none is pinned; `--sha256 HEX` checks a value the user trusts.
Wherever no full SHA-256 is pinned, the SHA-256 of what was installed is recorded next to the file
(`<file>.sha256`, sha256sum's format), and the listing says whether the file still matches it.

The URLs come from the libraries themselves (clean-fid's `inception_url`, torchvision's
`*_Weights.IMAGENET1K_V1.url`), never copied here. The table is injectable: `table(overrides)`, or
`$LSDM_WEIGHTS_TABLE` naming a JSON file `{name: {"url": ..., "sha256": ..., "prefix": ...}}` (a
mirror; the tests' local server).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

TABLE_ENV = "LSDM_WEIGHTS_TABLE"
TIMEOUT = 60  # seconds without a byte before a download counts as failed
CHUNK = 1 << 20
LPIPS_NETS = ("alex", "vgg", "squeeze")


class WeightsError(RuntimeError):
    """A fetch that failed: the message names the URL or file and what to do (exit status 2)."""


@dataclass(frozen=True)
class Weight:
    """One pretrained file: what needs it, where it comes from, where it goes, how it is checked."""

    name: str  # the command-line target, e.g. "inception", "lpips-alex"
    needs: str  # the metrics it enables
    what: str  # the file, in words
    url: str
    dest: Path  # where `fetch` installs it: the first place the evaluate stage looks
    sha256: str | None = None  # a full pinned SHA-256
    prefix: str | None = None  # the SHA-256 prefix in the file's name (torch.hub's convention)
    origin: str = ""  # where the URL and the hash come from


def table(overrides: dict[str, dict] | None = None) -> dict[str, Weight]:
    """Every file `lsdm weights` knows, by target name, with `overrides` (else $LSDM_WEIGHTS_TABLE's
    JSON) replacing an entry's url, sha256 or prefix."""
    import torch
    from cleanfid.downloads_helper import inception_url

    from lsdm.evaluation.features import INCEPTION_FILE, _torchvision_weights, inception_dirs, lpips_backbone_file

    out = {
        "inception": Weight(
            "inception",
            "fid_inception, kid_inception",
            f"clean-fid's Inception-V3 TorchScript `{INCEPTION_FILE}`",
            inception_url,
            inception_dirs()[0] / INCEPTION_FILE,
            origin="URL: clean-fid's cleanfid/downloads_helper.py (`inception_url`); clean-fid publishes no hash",
        )
    }
    for net in LPIPS_NETS:
        dest = lpips_backbone_file(net)
        found = torch.hub.HASH_REGEX.search(dest.name)
        out[f"lpips-{net}"] = Weight(
            f"lpips-{net}",
            f"lpips_diversity with evaluate.lpips_net: {net}",
            f"torchvision's ImageNet `{dest.name}`",
            _torchvision_weights(net).url,
            dest,
            prefix=found.group(1) if found else None,
            origin="URL: torchvision's IMAGENET1K_V1 weights; SHA-256 prefix: the file name (torch.hub's HASH_REGEX)",
        )
    if overrides is None and os.environ.get(TABLE_ENV):
        path = os.environ[TABLE_ENV]
        try:
            overrides = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise WeightsError(f"${TABLE_ENV} = {path}: not a readable JSON file ({e})") from None
    for name, fields in (overrides or {}).items():
        if name not in out or not isinstance(fields, dict) or set(fields) - {"url", "sha256", "prefix"}:
            raise WeightsError(
                f"weights table override {name!r}: {fields!r}; expected one of {sorted(out)} "
                "with the keys url, sha256, prefix"
            )
        out[name] = replace(out[name], **fields, origin=f"overridden ({TABLE_ENV} or a caller)")
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def record_file(dest: Path) -> Path:
    """Where the SHA-256 of an installed file is recorded (sha256sum's format)."""
    return dest.with_name(dest.name + ".sha256")


def recorded(dest: Path) -> str | None:
    try:
        return record_file(dest).read_text().split()[0]
    except (OSError, IndexError):
        return None


def mismatch(w: Weight, digest: str, expect: str | None = None) -> str | None:
    """Why `digest` is not `w`'s file (a sentence), or None when every check it has passes."""
    for label, want in (("the pinned SHA-256", w.sha256), ("the SHA-256 given with --sha256", expect)):
        if want and digest != want.lower():
            return f"its SHA-256 is {digest}, not {label} {want.lower()}"
    if w.prefix and not digest.startswith(w.prefix):
        return f"its SHA-256 is {digest}, which does not start with {w.prefix} (the hash prefix in its name)"
    return None


def _hash_note(w: Weight) -> str:
    if w.sha256:
        return f"SHA-256 pinned: {w.sha256}"
    if w.prefix:
        return (
            f"upstream publishes only the SHA-256 prefix {w.prefix} (in the file name; checked as torch.hub "
            "does); fetch records the full SHA-256 of what it installed next to the file"
        )
    return (
        "upstream publishes no hash: nothing to check against unless you pass --sha256; fetch records the "
        "SHA-256 of what it installed next to the file"
    )


def _status(w: Weight, path: Path) -> str:
    """Present and checked, present but different, or present with nothing to check against."""
    digest = sha256_file(path)
    if problem := mismatch(w, digest):
        return f"present at {path}, but WRONG: {problem}; run `lsdm weights fetch {w.name}` to replace it"
    rec = recorded(path)
    if rec and rec != digest:
        return f"present at {path}, but CHANGED since it was installed: SHA-256 {digest}, recorded {rec}"
    checks = [
        c
        for c, on in (
            ("pinned SHA-256", w.sha256),
            (f"hash prefix {w.prefix}", w.prefix),
            ("SHA-256 recorded at install", rec),
        )
        if on
    ]
    verdict = f"matches the {', '.join(checks)}" if checks else "nothing to check it against"
    return f"present at {path} (SHA-256 {digest}; {verdict})"


def _evaluate_params(params_file: str):
    """The `evaluate` section of params.yaml, or its defaults (and a note) where there is none."""
    from lsdm.config import EvaluateParams, load_params
    from lsdm.errors import ParamsError

    if not Path(params_file).exists():
        return EvaluateParams(), f"{params_file} not found: the defaults of `evaluate` are shown"
    try:
        return load_params(params_file).evaluate, None
    except ParamsError as e:
        return EvaluateParams(), f"{params_file} did not validate ({str(e).splitlines()[0]}): the defaults are shown"


def listing(params_file: str = "params.yaml", overrides: dict | None = None) -> str:
    """What each optional metric needs, where lsdm looks for it, and whether it is there."""
    from lsdm.evaluation.features import find_inception, lpips_linear_file

    ev, note = _evaluate_params(params_file)
    weights = table(overrides)
    lines = [f"note: {note}"] if note else []
    w = weights["inception"]
    found, reason = find_inception(ev.inception_weights)
    named = ev.inception_weights and f"evaluate.inception_weights = {ev.inception_weights}"
    lines += [
        f"{w.name}: {w.what}, for {w.needs}",
        f"  looked for:  {named or 'the user caches (evaluate.inception_weights is null)'}",
        f"  status:      {_status(w, found) if found else 'MISSING: ' + reason}",
        f"  get it:      lsdm weights fetch inception  (installs {w.dest})",
        f"  source:      {w.url}",
        f"  hash:        {_hash_note(w)}",
        f"  from:        {w.origin}",
    ]
    if ev.inception_weights:
        lines.append(
            f"  note:        fetch installs into {w.dest.parent}; while evaluate.inception_weights names a "
            "path, only that path is read: set it to null, or to the installed file"
        )
    for net in LPIPS_NETS:
        w = weights[f"lpips-{net}"]
        used = " (the one params.yaml selects)" if net == ev.lpips_net else ""
        linear = lpips_linear_file(net)
        lines += [
            f"{w.name}: {w.what}, for {w.needs}{used}",
            f"  looked for:  {w.dest}",
            f"  status:      {_status(w, w.dest) if w.dest.is_file() else 'MISSING'}",
            f"  get it:      lsdm weights fetch {w.name}" + ("  (= lsdm weights fetch lpips)" if used else ""),
            f"  source:      {w.url}",
            f"  hash:        {_hash_note(w)}",
            f"  from:        {w.origin}",
            f"  also needs:  the LPIPS linear layers, shipped in the lpips package: "
            f"{'present' if linear.is_file() else 'MISSING'} ({linear})",
        ]
    lines.append("After a fetch, `dvc repro -f -s evaluate` computes the metric (DVC does not watch weight files).")
    return "\n".join(lines)


def _bar(total: int | None, desc: str, progress: bool | None):
    """A byte-counting progress bar on stderr (as torch.hub's downloads show); `progress=False`: none."""
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, disable=progress is False)


def _download(w: Weight, out, progress: bool | None) -> str:
    """Stream `w.url` into the open file `out`; the SHA-256 of what arrived. A refused connection, a
    timeout, an HTTP error or fewer bytes than the server's Content-Length promised raise WeightsError."""
    elsewhere = (
        f"download {w.url} on a machine that can reach it and install it with "
        f"`lsdm weights fetch {w.name} --from FILE`; nothing was written to {w.dest.parent}"
    )
    partial = lambda got, total: WeightsError(  # noqa: E731
        f"the download of {w.url} stopped after {got} of the {total if total is not None else '?'} bytes promised "
        f"(a partial transfer): nothing was installed; run the command again, or {elsewhere}"
    )
    h, got, total = hashlib.sha256(), 0, None
    try:
        request = urllib.request.Request(w.url, headers={"User-Agent": "lsdm-weights"})
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with _bar(total, w.dest.name, progress) as bar:
                while block := response.read(CHUNK):
                    out.write(block)
                    h.update(block)
                    got += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        raise WeightsError(f"{w.url} answered HTTP {e.code} {e.reason}; {elsewhere}") from None
    except urllib.error.URLError as e:
        raise WeightsError(
            f"could not reach {w.url} ({e.reason}): no network, or a proxy or firewall in the way? "
            f"Otherwise {elsewhere}"
        ) from None
    except http.client.IncompleteRead as e:  # the connection closed early, as http.client noticed
        raise partial(got + len(e.partial), total) from None
    except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
        raise WeightsError(
            f"the download of {w.url} failed after {got} bytes ({type(e).__name__}: {e}); "
            f"run the command again, or {elsewhere}"
        ) from None
    if total is not None and got < total:
        raise partial(got, total)
    return h.hexdigest()


def _copy(src: Path, out, progress: bool | None) -> str:
    h = hashlib.sha256()
    with open(src, "rb") as fh, _bar(src.stat().st_size, src.name, progress) as bar:
        while block := fh.read(CHUNK):
            out.write(block)
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def install(w: Weight, source: Path | None = None, expect: str | None = None, progress: bool | None = None) -> Path:
    """Download `w` (or copy the local file `source`) to a temporary file beside `w.dest`, check its
    SHA-256, then rename it into place. On any failure the temporary file is removed and nothing in
    the destination folder changes. A file already in place that passes its checks is kept."""
    if source is None and w.dest.is_file() and not mismatch(w, digest := sha256_file(w.dest), expect):
        print(f"{w.name}: already present at {w.dest} (SHA-256 {digest})", file=sys.stderr)
        return w.dest
    if source is not None and not Path(source).is_file():
        raise WeightsError(f"--from {source}: no such file")
    where = f"{source}" if source else w.url
    w.dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=w.dest.parent, prefix=f".{w.dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            print(f"{w.name}: {f'copying {source}' if source else f'downloading {w.url}'} -> {w.dest}", file=sys.stderr)
            digest = _copy(Path(source), out, progress) if source else _download(w, out, progress)
            out.flush()
            os.fsync(out.fileno())
        if problem := mismatch(w, digest, expect):
            advice = (
                ("it is not the file lsdm expects; download it again from " + w.url)
                if source
                else (
                    "the file at that URL changed, was tampered with, or arrived corrupted; run the command again, and "
                    "if it fails the same way do not install the file by hand: report it"
                )
            )
            raise WeightsError(f"{where}: {problem}. Not installed ({w.dest} unchanged): {advice}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, w.dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if not w.sha256:  # nothing upstream to compare with later: keep what was installed
        rec = record_file(w.dest)
        rec_tmp = rec.with_name(f".{rec.name}.part")
        rec_tmp.write_text(f"{digest}  {w.dest.name}\n")
        os.replace(rec_tmp, rec)
    checked = "pinned SHA-256" if w.sha256 or expect else f"hash prefix {w.prefix}" if w.prefix else "no published hash"
    print(f"{w.name}: installed {w.dest} (SHA-256 {digest}; checked against: {checked})", file=sys.stderr)
    return w.dest


def targets(name: str, lpips_net: str) -> list[str]:
    """Command-line target -> table entries: `lpips` is the net evaluate.lpips_net selects."""
    lpips = f"lpips-{lpips_net}"
    return {"all": ["inception", lpips], "lpips": [lpips]}.get(name, [name])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lsdm weights", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--params",
        default="params.yaml",
        help="parameters file: evaluate.lpips_net and "
        "evaluate.inception_weights (default: %(default)s; its defaults when absent)",
    )
    sub = ap.add_subparsers(dest="command")
    fetch = sub.add_parser("fetch", help="download (or install --from) and verify")
    fetch.add_argument(
        "target",
        nargs="?",
        default="all",
        choices=["inception", "lpips", *(f"lpips-{n}" for n in LPIPS_NETS), "all"],
        help="`lpips`: the net of evaluate.lpips_net; `all` (default): inception and that",
    )
    fetch.add_argument("--from", dest="source", type=Path, metavar="FILE", help="install this file, not a download")
    fetch.add_argument("--sha256", help="also require this SHA-256 (the Inception file has no published one)")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        if args.command is None:
            print(listing(args.params))
            return 0
        ev, _ = _evaluate_params(args.params)
        weights, names = table(), targets(args.target, ev.lpips_net)
        if args.source is not None and len(names) != 1:
            raise WeightsError(f"--from installs one file: name it (inception, lpips, ...), not {args.target!r}")
        if args.sha256 and len(names) != 1:
            raise WeightsError("--sha256 checks one file: name it (inception, lpips, ...)")
        for name in names:
            install(weights[name], args.source, args.sha256, progress=False if args.no_progress else None)
        if "inception" in names and ev.inception_weights:
            print(
                f"note: evaluate.inception_weights = {ev.inception_weights}: evaluate reads only that path, "
                f"not {weights['inception'].dest}; set it to null to use the installed file",
                file=sys.stderr,
            )
        print("next: `dvc repro -f -s evaluate` (DVC does not watch weight files)", file=sys.stderr)
    except (WeightsError, OSError) as e:
        print(f"lsdm weights: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
