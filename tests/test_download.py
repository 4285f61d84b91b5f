import http.server
import threading
import zipfile

import pytest

from izf.data import synthetic, write_xlsa17
from izf.data.download import download, fetch
from izf.errors import DataError


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one file, honouring `Range: bytes=N-`; the first request is cut off half-way."""

    payload = b""
    cut_first = True

    def do_GET(self):  # noqa: N802
        start = int(self.headers.get("Range", "bytes=0-")[6:].rstrip("-") or 0)
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if RangeHandler.cut_first:
            RangeHandler.cut_first = False
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    staging = tmp_path / "staging"
    write_xlsa17(synthetic(n_classes=12, n_unseen=3, images_per_class=10, feature_dim=8, attribute_dim=5),
                 staging / "xlsa17" / "data")
    archive = tmp_path / "xlsa17.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in (staging / "xlsa17" / "data" / "SYNTHETIC").iterdir():
            zf.write(f, f"xlsa17/data/SYNTHETIC/{f.name}")
    RangeHandler.payload, RangeHandler.cut_first = archive.read_bytes(), True
    httpd = http.server.HTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/xlsa17.zip"
    httpd.shutdown()
    httpd.server_close()


def test_interrupted_download_resumes_then_extracts_and_checks(tmp_path, server):
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"kept in xlsa17.zip.part and the next try resumes it"):
        fetch(server, root / "xlsa17.zip", progress=False)
    kept = (root / "xlsa17.zip.part").stat().st_size
    assert 0 < kept < len(RangeHandler.payload)
    fetch(server, root / "xlsa17.zip", progress=False)
    assert (root / "xlsa17.zip").read_bytes() == RangeHandler.payload


def test_download_extracts_and_checks_the_dataset(tmp_path, server, monkeypatch):
    import izf.data.download as dl

    # The served dataset's own counts (5-d attributes, 12 classes, 120 images: 72 trainval, 18 + 30 test),
    # so that the count check runs on it as on a real one; then a count that differs fails the download.
    counts = (5, 12, 120, 72, 18, 30)
    monkeypatch.setattr(dl, "XLSA17_NAMES", (*dl.XLSA17_NAMES, "SYNTHETIC"))
    monkeypatch.setattr(dl, "EXPECTED", {**dl.EXPECTED, "SYNTHETIC": counts})
    RangeHandler.cut_first = False
    (summary,) = download(["synthetic"], tmp_path, url=server, progress=False)
    assert summary["n_classes"] == 12 and summary["n_unseen_classes"] == 3
    assert (tmp_path / "SYNTHETIC" / "res101.mat").is_file()
    monkeypatch.setattr(dl, "EXPECTED", {**dl.EXPECTED, "SYNTHETIC": (5, 12, 121, 72, 18, 30)})
    with pytest.raises(DataError, match=r"counts differ from xlsa17's \(got, expected\): \{'n_images': \(120, 121\)\}"):
        dl.check_counts("synthetic", tmp_path)


def test_no_network_says_where_to_put_the_files(tmp_path):
    with pytest.raises(DataError, match=r"put it at .*xlsa17.zip"):
        download(["sun"], tmp_path, url="http://127.0.0.1:9/xlsa17.zip", progress=False)


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(DataError, match=r"unknown dataset"):
        download(["imagenet"], tmp_path, progress=False)
