"""Downloads against a real http.server on 127.0.0.1 (Range resume, checksums) and the lookup order."""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


import pytest

from ulmfit_multi.errors import FetchError
from ulmfit_multi.fetch import download, locate, url_for

DATA = bytes(range(256)) * 2000  # 512000 bytes: several read chunks
SHA = hashlib.sha256(DATA).hexdigest()


class Handler(BaseHTTPRequestHandler):
    """Serves `server.files`; honors `Range: bytes=N-`; can drop the connection mid-body once per path."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng and srv.honor_range:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            assert m, rng
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.path in srv.drop_once:
            srv.drop_once.discard(self.path)
            self.wfile.write(chunk[: len(chunk) // 3])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(chunk)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.files = {}
    srv.requests = []
    srv.drop_once = set()
    srv.honor_range = True
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused: the offline case)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/x.csv"


def test_download_and_verify(server, tmp_path):
    server.files["/a.bin"] = DATA
    dest = download(server.base + "/a.bin", tmp_path / "a.bin", sha256=SHA, progress=False)
    assert dest == tmp_path / "a.bin"
    assert dest.read_bytes() == DATA
    assert server.requests == [("/a.bin", None)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]  # no .part left


def test_resume_after_dropped_connection(server, tmp_path):
    server.files["/a.bin"] = DATA
    server.drop_once.add("/a.bin")
    dest = download(server.base + "/a.bin", tmp_path / "a.bin", sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert len(server.requests) == 2
    assert server.requests[0] == ("/a.bin", None)
    path, rng = server.requests[1]
    assert path == "/a.bin" and rng is not None
    have = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
    assert 0 < have < len(DATA)  # resumed from the bytes already on disk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_dropped_connection_without_checksum_is_not_published_truncated(server, tmp_path):
    server.files["/a.bin"] = DATA
    server.drop_once.add("/a.bin")
    dest = download(server.base + "/a.bin", tmp_path / "a.bin", progress=False)
    assert dest.read_bytes() == DATA


def test_resume_from_existing_part_file(server, tmp_path):
    server.files["/a.bin"] = DATA
    (tmp_path / "a.bin.part").write_bytes(DATA[:1000])
    dest = download(server.base + "/a.bin", tmp_path / "a.bin", sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA
    assert server.requests == [("/a.bin", "bytes=1000-")]


def test_complete_part_file_answered_416_is_accepted(server, tmp_path):
    server.files["/a.bin"] = DATA
    (tmp_path / "a.bin.part").write_bytes(DATA)
    dest = download(server.base + "/a.bin", tmp_path / "a.bin", sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.files["/a.bin"] = DATA
    server.honor_range = False
    (tmp_path / "a.bin.part").write_bytes(b"garbage")
    dest = download(server.base + "/a.bin", tmp_path / "a.bin", sha256=SHA, progress=False)
    assert dest.read_bytes() == DATA


def test_checksum_mismatch_keeps_file_aside(server, tmp_path):
    server.files["/a.bin"] = DATA
    wrong = "0" * 64
    with pytest.raises(FetchError) as e:
        download(server.base + "/a.bin", tmp_path / "a.bin", sha256=wrong, progress=False)
    msg = str(e.value)
    assert "sha256 mismatch" in msg and wrong in msg and SHA in msg and "a.bin.bad" in msg
    assert not (tmp_path / "a.bin").exists()
    assert not (tmp_path / "a.bin.part").exists()
    assert (tmp_path / "a.bin.bad").read_bytes() == DATA


def test_404_fails_fast_with_the_url(server, tmp_path):
    with pytest.raises(FetchError, match=re.escape(server.base + "/missing.csv")):
        download(server.base + "/missing.csv", tmp_path / "missing.csv", progress=False)
    assert len(server.requests) == 1  # no retries on 404
    assert not (tmp_path / "missing.csv").exists()


def test_mirror_is_used_first(server, tmp_path):
    mirror, data = tmp_path / "mirror", tmp_path / "data"
    (mirror / "mr" / "x").mkdir(parents=True)
    (mirror / "mr" / "x" / "a.bin").write_bytes(DATA)
    server.files["/a.bin"] = b"other"
    got = locate("mr/x/a.bin", data_dir=data, mirror=mirror, url=server.base + "/a.bin", sha256=SHA,
                 progress=False)
    assert got == mirror / "mr" / "x" / "a.bin"
    assert server.requests == []
    assert not data.exists()  # nothing copied or downloaded


def test_mirror_copy_with_wrong_checksum_is_an_error(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.bin").write_bytes(b"different")
    with pytest.raises(FetchError, match="mirror copy differs"):
        locate("a.bin", data_dir=tmp_path / "data", mirror=mirror, sha256=SHA, progress=False)
    assert (mirror / "a.bin").exists()  # the read-only mirror is never touched


def test_mirror_folder_is_returned(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "mr" / "text").mkdir(parents=True)
    got = locate("mr/text", data_dir=tmp_path / "data", mirror=mirror, progress=False)
    assert got == mirror / "mr" / "text"


def test_data_root_hit(server, tmp_path):
    data = tmp_path / "data"
    (data / "mr").mkdir(parents=True)
    (data / "mr" / "a.bin").write_bytes(DATA)
    got = locate("mr/a.bin", data_dir=data, mirror=tmp_path / "empty-mirror", url=server.base + "/a.bin",
                 sha256=SHA, progress=False)
    assert got == data / "mr" / "a.bin"
    assert server.requests == []


def test_corrupt_data_root_copy_is_set_aside_and_downloaded_again(server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.bin").write_bytes(b"corrupt")
    server.files["/a.bin"] = DATA
    got = locate("a.bin", data_dir=data, mirror=None, url=server.base + "/a.bin", sha256=SHA, progress=False)
    assert got.read_bytes() == DATA
    assert (data / "a.bin.bad").read_bytes() == b"corrupt"


def test_download_into_data_root(server, tmp_path):
    server.files["/files/a.bin"] = DATA
    data = tmp_path / "data"
    got = locate("mr/a.bin", data_dir=data, mirror=tmp_path / "mirror", url=server.base + "/files/a.bin",
                 sha256=SHA, progress=False)
    assert got == data / "mr" / "a.bin" and got.read_bytes() == DATA


def test_missing_without_url_lists_every_path_tried(tmp_path):
    mirror, data = tmp_path / "mirror", tmp_path / "data"
    with pytest.raises(FetchError) as e:
        locate("mr/a.csv", data_dir=data, mirror=mirror, progress=False)
    msg = str(e.value)
    assert str(mirror / "mr" / "a.csv") in msg and str(data / "mr" / "a.csv") in msg
    assert "no URL" in msg


def test_offline_and_missing_lists_paths_and_url(tmp_path, closed_port_url):
    mirror, data = tmp_path / "mirror", tmp_path / "data"
    with pytest.raises(FetchError) as e:
        locate("mr/a.csv", data_dir=data, mirror=mirror, url=closed_port_url, progress=False)
    msg = str(e.value)
    assert str(mirror / "mr" / "a.csv") in msg
    assert str(data / "mr" / "a.csv") in msg
    assert closed_port_url in msg
    assert not (data / "mr" / "a.csv").exists()


def test_url_for_uses_the_longest_matching_prefix():
    remotes = [
        ("mr/", "https://example.org/all"),
        ("mr/mahasent-md/", "https://example.org/md/"),
        ("ta/fire/", "https://example.org/fire"),
    ]
    assert url_for("mr/mahasent-md/GT/train.csv", remotes) == "https://example.org/md/GT/train.csv"
    assert url_for("mr/other/x.csv", remotes) == "https://example.org/all/other/x.csv"
    assert url_for("ta/fire/tamil train.tsv", remotes) == "https://example.org/fire/tamil%20train.tsv"
    assert url_for("hi/x.csv", remotes) == ""
    assert url_for("mr/x.csv", []) == ""


def test_a_fetch_with_a_failed_download_is_tried_again(tmp_path):
    import json

    from ulmfit_multi.fetch import fetch_still_valid

    (tmp_path / "a.csv").write_text("x", encoding="utf-8")
    fetched = {"a.csv": {"path": str(tmp_path / "a.csv")}, "b.csv": {"path": None, "reason": "no URL"}}
    (tmp_path / "fetched.json").write_text(json.dumps(fetched), encoding="utf-8")
    assert fetch_still_valid(tmp_path)  # nothing to download: a missing file stays missing until it appears
    fetched["c.csv"] = {"path": None, "url": "https://example.org/c.csv"}
    (tmp_path / "fetched.json").write_text(json.dumps(fetched), encoding="utf-8")
    assert not fetch_still_valid(tmp_path)


def test_locate_checks_a_copy_with_the_given_hash_function(tmp_path):
    mirror = tmp_path / "m"
    (mirror / "x").mkdir(parents=True)
    (mirror / "x" / "f.txt").write_text("data", encoding="utf-8")
    seen = []
    assert locate("x/f.txt", data_dir=tmp_path / "d", mirror=mirror, sha256="ab" * 32,
                  sha256_of=lambda p: seen.append(p) or "ab" * 32) == mirror / "x" / "f.txt"
    assert seen == [mirror / "x" / "f.txt"]
