"""locscale.download against a real HTTP server on 127.0.0.1 (http.server in a thread, port 0)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from locscale.download import (
    DownloadError,
    emdb_half_map_urls,
    emdb_half_maps_missing,
    emdb_map_url,
    fetch,
    offline_report,
    pdb_model_url,
    remote_exists,
    sha256_of,
    unreachable,
)
from locscale.errors import LocScaleInputError
from locscale.mapio import read_map

FAST = {"retries": 2, "timeout": 5, "backoff": 0.01, "progress": False}


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the `root` folder; /truncated sends fewer bytes than its Content-Length announces."""

    requests: list[str] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        if self.path == "/truncated.bin":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True
            return
        super().do_GET()

    def do_HEAD(self):
        type(self).requests.append(f"HEAD {self.path}")
        super().do_HEAD()


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = type("H", (_Handler,), {"requests": []})

    def factory(*args, **kwargs):
        return handler(*args, directory=str(root), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), factory)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, handler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_good_file_with_checksum(server, tmp_path, emd3488_map):
    url, root, _ = server
    shutil.copy(emd3488_map, root / "emd_3488.map")
    want = hashlib.sha256(emd3488_map.read_bytes()).hexdigest()
    out_dir = tmp_path / "out"
    dest = fetch(f"{url}/emd_3488.map", out_dir / "emd_3488.mrc", sha256=want, **FAST)
    assert dest == out_dir / "emd_3488.mrc"
    assert dest.read_bytes() == emd3488_map.read_bytes()
    assert sha256_of(dest) == want
    assert _leftovers(out_dir) == ["emd_3488.mrc"]  # no temporary files
    # a real map: it reads back identical
    np.testing.assert_array_equal(read_map(dest).data, read_map(emd3488_map).data)


def test_existing_file_with_matching_checksum_is_not_downloaded_again(server, tmp_path):
    url, root, requests = server
    (root / "a.txt").write_bytes(b"hello\n")
    want = hashlib.sha256(b"hello\n").hexdigest()
    dest = tmp_path / "a.txt"
    fetch(f"{url}/a.txt", dest, sha256=want, **FAST)
    fetch(f"{url}/a.txt", dest, sha256="SHA256:" + want.upper(), **FAST)
    assert requests == ["/a.txt"]


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    url, root, requests = server
    (root / "model.cif").write_bytes(b"data_x\n" * 100)
    out_dir = tmp_path / "out"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        fetch(f"{url}/model.cif", out_dir / "model.cif", sha256=wrong, **FAST)
    msg = str(info.value)
    assert "checksum mismatch" in msg and f"{url}/model.cif" in msg and wrong in msg
    assert hashlib.sha256(b"data_x\n" * 100).hexdigest() in msg  # the value found, to check by hand
    assert str(out_dir / "model.cif") in msg and "fix:" in msg
    assert isinstance(info.value, LocScaleInputError)
    assert not (out_dir / "model.cif").exists()
    assert _leftovers(out_dir) == []  # no partial or temporary file
    assert requests == ["/model.cif"]  # a mismatch is not retried


def test_missing_file_404_fails_at_once(server, tmp_path):
    url, _, requests = server
    dest = tmp_path / "out" / "emd_1.map"
    with pytest.raises(DownloadError) as info:
        fetch(f"{url}/nope/emd_1.map.gz", dest, retries=3, timeout=5, backoff=0.01, progress=False)
    msg = str(info.value)
    assert "404" in msg and f"{url}/nope/emd_1.map.gz" in msg and str(dest) in msg
    assert "gunzip" in msg  # the manual fix matches what fetch would have done
    assert info.value.transient is False
    assert requests == ["/nope/emd_1.map.gz"]  # permanent: no retries
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_server_down_gives_clear_error_quickly(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "m.mrc"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch(f"http://127.0.0.1:{port}/m.mrc", dest, **FAST)
    elapsed = time.monotonic() - t0
    msg = str(info.value)
    assert "connection refused" in msg and "after 3 attempts" in msg
    assert f"http://127.0.0.1:{port}/m.mrc" in msg and str(dest) in msg and "curl" in msg
    assert info.value.transient is True
    # 3 refused connects (sub-ms each) + back-off 0.01 + 0.02 s; generous bound for a loaded 2-core machine
    assert elapsed < 5.0
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_truncated_transfer_is_retried_then_reported(server, tmp_path):
    url, _, requests = server
    dest = tmp_path / "out" / "t.bin"
    with pytest.raises(DownloadError) as info:
        fetch(f"{url}/truncated.bin", dest, **FAST)
    assert "truncated" in str(info.value)
    assert requests == ["/truncated.bin"] * 3  # 1 + retries=2
    assert _leftovers(dest.parent) == []


def test_gz_is_decompressed_and_checksum_is_of_the_result(server, tmp_path, emd3488_map):
    url, root, _ = server
    raw = emd3488_map.read_bytes()
    (root / "emd_3488.map.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    want = hashlib.sha256(raw).hexdigest()
    dest = fetch(f"{url}/emd_3488.map.gz", tmp_path / "emd_3488.map", sha256=want, **FAST)
    assert dest.read_bytes() == raw
    # keeping the .gz when dest is .gz too
    kept = fetch(f"{url}/emd_3488.map.gz", tmp_path / "copy.map.gz", **FAST)
    assert kept.read_bytes() == (root / "emd_3488.map.gz").read_bytes()
    assert gzip.decompress(kept.read_bytes()) == raw


def test_bad_gzip_is_reported(server, tmp_path):
    url, root, _ = server
    (root / "fake.map.gz").write_bytes(b"this is not gzip" * 10)
    with pytest.raises(DownloadError, match="not valid gzip"):
        fetch(f"{url}/fake.map.gz", tmp_path / "out" / "fake.map", **FAST)
    assert _leftovers(tmp_path / "out") == []


def test_mirrors_are_tried_in_order(server, tmp_path):
    url, root, requests = server
    (root / "b.txt").write_bytes(b"mirror two\n")
    dest = fetch([f"{url}/missing/b.txt", f"{url}/b.txt"], tmp_path / "b.txt", **FAST)
    assert dest.read_bytes() == b"mirror two\n"
    assert requests == ["/missing/b.txt", "/b.txt"]


def test_offline_mirrors_are_summarised_once_each(tmp_path):
    """A server that refuses connections on every mirror: one entry per mirror with its problem and the attempt
    count (not the same failed URL once per attempt, 12 times for 3 mirrors × 4 attempts)."""
    ports = []
    for _ in range(3):
        with socket.socket() as s:  # ports nobody listens on: connection refused
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    urls = [f"http://127.0.0.1:{p}/emd_1.map.gz" for p in ports]
    with pytest.raises(DownloadError) as info:
        fetch(urls, tmp_path / "emd_1.map", **{**FAST, "retries": 3})
    problem = info.value.problem
    assert problem.startswith("all 3 mirrors failed: ")
    for u in urls:
        assert problem.count(u) == 1
        assert f"{u}: connection refused (server down or no network) (4 attempts)" in problem
    assert len(str(info.value).splitlines()) == 2 and _leftovers(tmp_path) == []


def test_bad_checksum_string_and_url():
    with pytest.raises(LocScaleInputError, match="SHA-256"):
        fetch("http://127.0.0.1:9/x", "/tmp/never", sha256="abc", progress=False)
    with pytest.raises(DownloadError, match="full URL"):
        fetch("not a url", "/tmp/never-written", retries=0, progress=False)
    assert not Path("/tmp/never-written").exists()


def test_archive_urls():
    base = "https://ftp.ebi.ac.uk/pub/databases/emdb/structures"
    for acc in ("EMD-5778", "emd_5778", "5778", 5778):
        assert emdb_map_url(acc) == f"{base}/EMD-5778/map/emd_5778.map.gz"
    assert emdb_half_map_urls("EMD-3488") == (
        f"{base}/EMD-3488/other/emd_3488_half_map_1.map.gz",
        f"{base}/EMD-3488/other/emd_3488_half_map_2.map.gz",
    )
    assert emdb_map_url("EMD-12345", mirror="wwpdb") == (
        "https://files.wwpdb.org/pub/emdb/structures/EMD-12345/map/emd_12345.map.gz")
    assert pdb_model_url("3j5p") == "https://files.rcsb.org/download/3J5P.cif"
    assert pdb_model_url("5ME2", fmt="pdb") == "https://files.rcsb.org/download/5ME2.pdb"
    assert pdb_model_url("5me2", compressed=True) == "https://files.rcsb.org/download/5ME2.cif.gz"
    for bad in ("EMD-57", "XYZ-5778", ""):
        with pytest.raises(LocScaleInputError, match="EMDB accession"):
            emdb_map_url(bad)
    with pytest.raises(LocScaleInputError, match="PDB ID"):
        pdb_model_url("ABCDE")
    with pytest.raises(LocScaleInputError, match="format"):
        pdb_model_url("3J5P", fmt="mmtf")


# ---------------------------------------------------------------------- offline: detected at once, reported once
def test_host_name_lookup_failure_is_not_retried(tmp_path):
    """Offline, a name that does not resolve is permanent for this run: no retries, no back-off waits, and the
    next mirror is tried at once (".invalid" never resolves, RFC 6761)."""
    urls = ["http://emdb.invalid/emd_1.map.gz", "http://pdb.invalid/emd_1.map.gz"]
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as info:
        fetch(urls, tmp_path / "emd_1.map", retries=3, timeout=5, backoff=10.0, progress=False)
    assert time.monotonic() - t0 < 5.0  # one back-off wait alone would take 10 s
    assert info.value.transient is False
    problem = info.value.problem
    assert problem.count("host name lookup failed") == 2 and "attempts" not in problem
    assert _leftovers(tmp_path) == []


@pytest.fixture()
def no_network(monkeypatch):
    """This process 'offline': every http(s) request goes through a proxy whose name does not resolve."""
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://proxy.invalid:3128")


def test_offline_report_names_every_missing_file_and_the_fix(no_network):
    missing = {
        "resources/x/emd_1_half_map_1.map": ["https://ftp.ebi.ac.uk/a/emd_1_half_map_1.map.gz",
                                             "https://files.wwpdb.org/a/emd_1_half_map_1.map.gz"],
        "resources/x/emd_1_half_map_2.map": ["https://ftp.ebi.ac.uk/a/emd_1_half_map_2.map.gz"],
        "resources/x/1ABC.cif": ["https://files.rcsb.org/download/1ABC.cif"],
    }
    t0 = time.monotonic()
    msg = offline_report(missing, "snakemake --cores 1 download", ["(a note)"], timeout=2.0)
    assert time.monotonic() - t0 < 4.0
    lines = msg.splitlines()
    assert len(lines) == 3 + len(missing) + 1
    assert "proxy proxy.invalid: host name lookup failed" in lines[0] and "3 input files" in lines[0]
    for dest, urls in missing.items():
        assert sum(dest in line for line in lines) == 1 and urls[0] in msg
    assert "`snakemake --cores 1 download`" in msg and "(a note)" in msg
    assert offline_report({}, "x") is None


def test_offline_report_is_silent_when_a_source_answers(server):
    url, _, _ = server
    assert unreachable([f"{url}/a.map"]) == {}
    assert offline_report({"resources/x/a.map": [f"{url}/a.map"]}, "snakemake download") is None


def test_remote_exists_and_half_maps_missing(server, tmp_path):
    """The archive is asked (HTTP HEAD) whether an entry has half maps; "not there" falls back to the primary map
    and is recorded, so a later run without network decides the same."""
    url, root, requests = server
    (root / "EMD-9999" / "map").mkdir(parents=True)
    (root / "EMD-9999" / "map" / "emd_9999.map.gz").write_bytes(b"x")
    half1 = emdb_half_map_urls(9999, mirror=url)[0]
    assert half1 == f"{url}/EMD-9999/other/emd_9999_half_map_1.map.gz"
    assert remote_exists([emdb_map_url(9999, mirror=url)]) is True
    assert remote_exists([half1]) is False
    assert requests[-1] == "HEAD /EMD-9999/other/emd_9999_half_map_1.map.gz"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/x"
    assert remote_exists([dead], timeout=2) is None

    folder = tmp_path / "resources"
    assert emdb_half_maps_missing(9999, [dead], folder) is None  # offline: keep the half maps planned
    warning = emdb_half_maps_missing(9999, [half1], folder)
    assert "EMD-9999 has no half maps" in warning and "primary map" in warning
    n_requests = len(requests)
    assert emdb_half_maps_missing(9999, [half1], folder, probe=False) == warning  # from the record, no request
    assert len(requests) == n_requests
    (folder / "emd_9999_half_map_1.map").write_bytes(b"1")
    (folder / "emd_9999_half_map_2.map").write_bytes(b"2")
    assert emdb_half_maps_missing(9999, [half1], folder) is None  # half maps at hand are used
