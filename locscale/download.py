"""Fetch public maps and models (EMDB, PDB) with checksums, retries and clear errors when offline.

:func:`fetch` streams a URL into a temporary file beside the destination, decompresses ``.gz`` on the fly,
verifies the SHA-256 of the file it wrote, and renames it into place only when everything checked out; a
failed download never leaves a file at the destination. Transient failures (connection refused or reset,
time-outs, HTTP 5xx/408/429, truncated transfers) are retried with exponential back-off; permanent ones
(HTTP 404 and other 4xx, a checksum mismatch, a host name that does not resolve or a network that cannot be
reached: the machine is offline) fail at once. Every failure raises :class:`DownloadError`, a
:class:`~locscale.errors.LocScaleInputError` naming the URL, the problem and the fix (usually: download the
file by hand and put it at the destination path).

Before a run starts, :func:`offline_report` checks in a few seconds whether the hosts (or the proxy) of the
files still to be fetched can be reached at all, and if not returns one short message naming every missing
file and the command that fetches them on a machine with network access. :func:`remote_exists` asks an
archive whether a file exists (HTTP HEAD), e.g. whether an EMDB entry has half maps.

URL helpers follow the archives' layouts::

    emdb_map_url(5778)       https://ftp.ebi.ac.uk/pub/databases/emdb/structures/EMD-5778/map/emd_5778.map.gz
    emdb_half_map_urls(5778) .../EMD-5778/other/emd_5778_half_map_1.map.gz, ..._half_map_2.map.gz
    pdb_model_url("3j5p")    https://files.rcsb.org/download/3J5P.cif
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from tqdm import tqdm

from .errors import LocScaleInputError
from .outputs import atomic_output

EMDB_MIRRORS = {
    "ebi": "https://ftp.ebi.ac.uk/pub/databases/emdb/structures",
    "wwpdb": "https://files.wwpdb.org/pub/emdb/structures",
    "rcsb": "https://ftp.rcsb.org/pub/emdb/structures",
}
PDB_DOWNLOAD = "https://files.rcsb.org/download"
USER_AGENT = "locscale-download/1 (+https://github.com/; python-urllib)"
_CHUNK = 1 << 20


class DownloadError(LocScaleInputError):
    """A download failed (offline, HTTP error, checksum mismatch); the message names URL, problem and fix."""

    def __init__(self, problem: str, fix: str, path=None, url: str | None = None, transient: bool = False):
        self.url = url
        self.transient = transient
        super().__init__(problem, fix, path)


# ---------------------------------------------------------------------- accessions -> URLs
def emdb_number(emd_id: str | int) -> str:
    """The numeric part of an EMDB accession ('EMD-5778', 'emd_5778', '5778' or 5778 -> '5778')."""
    m = re.fullmatch(r"(?:emd[-_]?)?(\d{4,6})", str(emd_id).strip(), flags=re.IGNORECASE)
    if not m:
        raise LocScaleInputError(f"{emd_id!r} is not an EMDB accession",
                                 "give it as EMD-NNNN (4 to 6 digits), e.g. EMD-5778 or 5778")
    return m.group(1)


def _emdb_base(emd_id: str | int, mirror: str) -> tuple[str, str]:
    """A mirror is one of :data:`EMDB_MIRRORS` by name, or the base URL of a copy of the archive's
    ``structures`` folder (a local or institutional mirror: ``<base>/EMD-N/map/emd_N.map.gz``)."""
    if re.match(r"(https?|ftp|file)://", str(mirror)):
        base = str(mirror).rstrip("/")
    elif mirror in EMDB_MIRRORS:
        base = EMDB_MIRRORS[mirror]
    else:
        raise LocScaleInputError(f"unknown EMDB mirror {mirror!r}",
                                 f"use one of {sorted(EMDB_MIRRORS)} or the base URL of a mirror")
    n = emdb_number(emd_id)
    return f"{base}/EMD-{n}", n


def emdb_map_url(emd_id: str | int, mirror: str = "ebi") -> str:
    """URL of an EMDB entry's primary map (gzipped CCP4)."""
    base, n = _emdb_base(emd_id, mirror)
    return f"{base}/map/emd_{n}.map.gz"


def emdb_half_map_urls(emd_id: str | int, mirror: str = "ebi") -> tuple[str, str]:
    """URLs of an EMDB entry's two half maps (``other/emd_N_half_map_{1,2}.map.gz``, the archive's naming
    since 2018 half maps became mandatory; older entries may lack them or name them differently)."""
    base, n = _emdb_base(emd_id, mirror)
    return (f"{base}/other/emd_{n}_half_map_1.map.gz", f"{base}/other/emd_{n}_half_map_2.map.gz")


def pdb_model_url(pdb_id: str, fmt: str = "cif", compressed: bool = False) -> str:
    """URL of a PDB entry's coordinates at RCSB (``fmt`` 'cif' = PDBx/mmCIF or 'pdb'; ``.gz`` if compressed)."""
    pid = str(pdb_id).strip()
    if not re.fullmatch(r"[0-9][A-Za-z0-9]{3}", pid):
        raise LocScaleInputError(f"{pdb_id!r} is not a 4-character PDB ID",
                                 "give the PDB ID as four characters starting with a digit, e.g. 3J5P")
    if fmt not in ("cif", "pdb"):
        raise LocScaleInputError(f"unknown model format {fmt!r}", "use fmt='cif' (mmCIF) or fmt='pdb'")
    return f"{PDB_DOWNLOAD}/{pid.upper()}.{fmt}{'.gz' if compressed else ''}"


# ---------------------------------------------------------------------- checksums
def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (the checksum :func:`fetch` verifies: that of the file written at ``dest``)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _normalise_sha(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    s = str(sha256).strip().lower()
    if s.startswith("sha256:"):
        s = s[len("sha256:"):]
    if not re.fullmatch(r"[0-9a-f]{64}", s):
        raise LocScaleInputError(f"{sha256!r} is not a SHA-256 checksum",
                                 "give 64 hexadecimal digits, as printed by `sha256sum FILE`")
    return s


# ---------------------------------------------------------------------- download
def _manual_fix(url: str, dest: Path, gz: bool) -> str:
    if gz:
        return (f"download it by hand and put the uncompressed file at {dest}, e.g. "
                f"`curl -fL {url} | gunzip > {dest}`, then run again")
    return f"download it by hand and put it at {dest}, e.g. `curl -fL -o {dest} {url}`, then run again"


def _transfer(url: str, tmp: Path, gz: bool, timeout: float, progress: bool) -> tuple[str, int]:
    """One attempt: stream `url` into `tmp` (gunzipped if `gz`); returns (sha256 of tmp, bytes written)."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    h = hashlib.sha256()
    n_in = n_out = 0
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(tmp, "wb") as out:
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        inflater = zlib.decompressobj(wbits=47) if gz else None  # 47 = 32 + 15: gzip or zlib header
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress,
                  desc=Path(url).name, file=sys.stderr, leave=False) as bar:
            while True:
                block = resp.read(_CHUNK)
                if not block:
                    break
                n_in += len(block)
                bar.update(len(block))
                if inflater is not None:
                    try:
                        block = inflater.decompress(block)
                    except zlib.error as exc:
                        raise DownloadError(f"{url} is not valid gzip data ({exc})",
                                            "check the URL (a .gz URL must serve a gzip file)",
                                            url=url) from exc
                out.write(block)
                h.update(block)
                n_out += len(block)
            if inflater is not None:
                tail = inflater.flush()
                out.write(tail)
                h.update(tail)
                n_out += len(tail)
                if not inflater.eof:
                    raise DownloadError(f"{url}: the gzip stream ended early after {n_in} bytes",
                                        "retry later", url=url, transient=True)
        if total is not None and n_in != total:
            raise DownloadError(f"{url}: transfer truncated ({n_in} of {total} bytes)", "retry later",
                                url=url, transient=True)
    return h.hexdigest(), n_out


def _classify(exc: BaseException, url: str, dest: Path, gz: bool) -> DownloadError:
    fix = _manual_fix(url, dest, gz)
    if isinstance(exc, DownloadError):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        transient = exc.code >= 500 or exc.code in (408, 429)
        what = {404: "not found (HTTP 404)", 403: "access denied (HTTP 403)", 410: "gone (HTTP 410)"}.get(
            exc.code, f"HTTP error {exc.code} {exc.reason}")
        if exc.code == 404:
            fix = ("check the accession and file name (the archive may not hold this file, e.g. an entry "
                   "without deposited half maps); or " + fix)
        return DownloadError(f"download of {url} failed: {what}", fix, dest, url=url, transient=transient)
    reason = getattr(exc, "reason", exc)
    problem, transient = _network_problem(reason)
    return DownloadError(f"download of {url} failed: {problem}",
                         "check the network connection (compute nodes are often offline: run the download "
                         "on a login node first); or " + fix, dest, url=url, transient=transient)


_OFFLINE_ERRNOS = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN)


def _network_problem(reason) -> tuple[str, bool]:
    """(what went wrong, whether retrying can help). A host name that does not resolve or a network that
    cannot be reached means this machine is offline: retrying within seconds cannot help."""
    if isinstance(reason, socket.gaierror):
        return f"host name lookup failed ({reason}) -- offline?", False
    if isinstance(reason, OSError) and reason.errno in _OFFLINE_ERRNOS:
        return f"network unreachable ({reason.strerror}) -- offline?", False
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (server down or no network)", True
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out", True
    return f"{type(reason).__name__}: {reason}", True


def summarise_failures(errors: Sequence[DownloadError]) -> str:
    """One entry per mirror (URL), in the order tried: its distinct problems and how many attempts failed,
    e.g. ``https://a/x.gz: timed out (4 attempts); https://b/x.gz: not found (HTTP 404)``."""
    by_url: dict[str, list[str]] = {}
    for e in errors:
        problem = e.problem.split(" failed: ", 1)[1] if " failed: " in e.problem else e.problem
        problem = problem.replace(f"{e.url}: ", "").replace(f"{e.url} ", "") if e.url else problem
        by_url.setdefault(e.url or "?", []).append(problem)
    parts = []
    for url, problems in by_url.items():
        distinct = list(dict.fromkeys(problems))
        count = f" ({len(problems)} attempts)" if len(problems) > 1 else ""
        parts.append(f"{url}: {' / '.join(distinct)}{count}")
    return "; ".join(parts)


def fetch(url: str | Sequence[str], dest: str | os.PathLike, sha256: str | None = None, retries: int = 3,
          timeout: float = 60, *, backoff: float = 2.0, decompress: bool | None = None,
          progress: bool = True) -> Path:
    """Download `url` to `dest` atomically and return `dest`.

    url        -- an http(s)/ftp/file URL, or several mirrors of one file, tried in order.
    sha256     -- expected SHA-256 (hex) of the file written at `dest`, i.e. *after* decompression: what
                  ``sha256sum dest`` prints. A mismatch raises and leaves nothing at `dest`. If `dest`
                  already exists with this checksum, nothing is downloaded.
    retries    -- further attempts per URL after a transient failure (so at most ``1 + retries``), waiting
                  ``backoff * 2**k`` seconds before retry k.
    timeout    -- seconds without data before a connection attempt or read gives up.
    decompress -- gunzip while streaming; default: when the URL ends in ``.gz`` and `dest` does not.
    """
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("fetch() needs at least one URL")
    dest = Path(dest)
    want = _normalise_sha(sha256)
    if want is not None and dest.is_file() and sha256_of(dest) == want:
        return dest
    errors: list[DownloadError] = []
    for u in urls:
        gz = decompress if decompress is not None else (u.endswith(".gz") and not dest.name.endswith(".gz"))
        for attempt in range(int(retries) + 1):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            try:
                with atomic_output(dest) as tmp:
                    got, _ = _transfer(u, Path(tmp), gz, timeout, progress)
                    if want is not None and got != want:
                        raise DownloadError(
                            f"checksum mismatch for {u}: expected sha256 {want}, got {got}",
                            "if the archive replaced the file on purpose, update the sha256 in the config to "
                            f"the new value after checking it; otherwise {_manual_fix(u, dest, gz)} and check "
                            "it with `sha256sum`", dest, url=u)
                return dest
            except (urllib.error.URLError, OSError, http.client.HTTPException, DownloadError, ValueError) as exc:
                if isinstance(exc, ValueError) and not isinstance(exc, DownloadError):
                    # urllib raises ValueError for malformed URLs: permanent
                    raise DownloadError(f"cannot download {u!r}: {exc}",
                                        "give a full URL such as https://host/path/file", dest, url=u) from exc
                err = _classify(exc, u, dest, gz)
                if err.path is None:
                    err = DownloadError(err.problem, err.fix, dest, url=err.url, transient=err.transient)
                errors.append(err)
                if not err.transient:
                    break
    last = errors[-1]
    if len(urls) > 1:
        raise DownloadError(f"all {len(urls)} mirrors failed: {summarise_failures(errors)}", last.fix, dest,
                            url=last.url, transient=last.transient)
    if last.transient and retries > 0:
        raise DownloadError(f"{last.problem} (after {int(retries) + 1} attempts)", last.fix, dest,
                            url=last.url, transient=True)
    raise last


# ---------------------------------------------------------------------- before a run: can anything be fetched?
def _endpoint(url: str) -> tuple[str, int, str] | None:
    """(host, port, what) a download of `url` connects to first: the proxy urllib would use for it
    (``https_proxy`` & co.), else the URL's own host. None for file URLs and paths."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https", "ftp") or not parts.hostname:
        return None
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if p.hostname:
            return p.hostname, p.port or 8080, f"proxy {p.hostname}"
    default = {"http": 80, "https": 443, "ftp": 21}[parts.scheme]
    return parts.hostname, parts.port or default, parts.hostname


def _connect(host: str, port: int, timeout: float) -> str | None:
    """None if a TCP connection to host:port opens within `timeout` s, else why not."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return _network_problem(exc)[0]
    return None


def unreachable(urls: Sequence[str], timeout: float = 3.0) -> dict[str, str]:
    """The hosts (or proxies) of `urls` that cannot be reached from here -> why (name lookup, no route,
    refused, no answer within `timeout` s). Checked in parallel, so this takes at most about `timeout`."""
    endpoints = {e[:2]: e[2] for e in map(_endpoint, urls) if e is not None}
    if not endpoints:
        return {}
    pool = ThreadPoolExecutor(max_workers=len(endpoints))
    futures = {pool.submit(_connect, host, port, timeout): what for (host, port), what in endpoints.items()}
    done, _ = wait(futures, timeout=timeout + 1.0)
    pool.shutdown(wait=False, cancel_futures=True)  # a hanging name lookup must not hold the run
    out = {}
    for future, what in futures.items():
        problem = future.result() if future in done else f"no answer within {timeout:g} s"
        if problem is not None:
            out[what] = problem
    return out


def remote_exists(urls: Sequence[str], timeout: float = 10.0) -> bool | None:
    """Whether the archive has this file (HTTP HEAD on each mirror in turn): True when a mirror has it,
    False when a mirror answers 404/410 and none has it, None when no mirror could be asked (offline)."""
    missing = False
    for url in urls:
        req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": USER_AGENT})
        try:
            with urllib.request.urlopen(req, timeout=timeout):
                return True
        except urllib.error.HTTPError as exc:
            missing = missing or exc.code in (404, 410)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError):
            continue
    return False if missing else None


def offline_report(missing: Mapping[str, Sequence[str]], command: str, notes: Sequence[str] = (),
                   timeout: float = 3.0) -> str | None:
    """The message for a run that needs downloads on a machine that cannot make them, or None.

    missing -- destination path -> its URLs (mirrors), for every file still to be fetched.
    command -- the command that fetches them, to run where there is network access.
    notes   -- extra lines (e.g. what happens if an archive lacks a file).

    When any missing file has no reachable source, the message names every missing file with its first URL
    and the fix, in ``3 + len(missing) + len(notes)`` lines."""
    if not missing:
        return None
    down = unreachable([u for urls in missing.values() for u in urls], timeout)
    blocked = [dest for dest, urls in missing.items()
               if urls and all((e := _endpoint(u)) is not None and e[2] in down for u in urls)]
    if not blocked:
        return None
    by_problem: dict[str, list[str]] = {}
    for what, problem in down.items():
        by_problem.setdefault(re.sub(r" \(\[Errno [^)]*\)", "", problem), []).append(what)
    why = "; ".join(f"{', '.join(hosts)}: {problem}" for problem, hosts in by_problem.items())
    width = max(len(str(d)) for d in missing)
    lines = [f"{len(missing)} input file{'s' if len(missing) > 1 else ''} must be downloaded, and this machine "
             f"cannot reach the archives ({why}):"]
    lines += [f"  {str(dest):<{width}}  <- {urls[0]}" for dest, urls in missing.items()]
    lines += [f"  {note}" for note in notes]
    lines += [f"  fix: where there is network access (e.g. the cluster's login node), run `{command}`, then "
              "run this command again;",
              "       or download the files by hand to those paths (gunzip the .gz ones)"]
    return "\n".join(lines)


HALF_MAPS_RECORD = "emdb_half_maps.json"


def emdb_half_maps_missing(emd_id: str | int, half_map_urls: Sequence[str], folder: str | os.PathLike,
                           probe: bool = True, timeout: float = 10.0) -> str | None:
    """Whether an EMDB entry lacks half maps, for ``use_half_maps: true``: None to use the half maps, or a
    warning saying that the archive has none and the primary map is used instead.

    half_map_urls -- half map 1's URL on each mirror. folder -- where the downloads go. Half maps already in
    `folder` are used. Otherwise the archive is asked (if `probe`); its answer "not there" is kept in
    ``folder/emdb_half_maps.json``, so later runs (an offline compute node, each cluster job) decide the same
    without asking. Offline (no answer) the half maps stay planned: the run then stops before any job with the
    list of files to fetch."""
    folder = Path(folder)
    names = [Path(urllib.parse.urlsplit(u).path).name.removesuffix(".gz") for u in half_map_urls[:1]]
    if names and (folder / names[0]).is_file() and (folder / names[0].replace("_1.", "_2.")).is_file():
        return None
    record = folder / HALF_MAPS_RECORD
    known = None
    if record.is_file():
        try:
            known = json.loads(record.read_text()).get("half_maps_exist")
        except (OSError, ValueError):
            known = None
    if known is None and probe:
        known = remote_exists(half_map_urls, timeout)
        if known is False:
            from .records import write_json

            write_json(record, {"emdb": f"EMD-{emdb_number(emd_id)}", "half_maps_exist": False,
                                "asked": list(half_map_urls),
                                "note": "delete this file to ask the archive again"})
    if known is False:
        return (f"EMD-{emdb_number(emd_id)} has no half maps in EMDB ({half_map_urls[0]}: not found): using its "
                f"primary map instead (no cross-validation; the resolution comes from the config). Recorded in "
                f"{record}; delete it to ask again.")
    return None
