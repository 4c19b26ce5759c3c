"""fastnn.datasets: the IDX parser, MNIST / Fashion-MNIST search, verification and
download (against a local HTTP server only), and the small sets shipped in the package."""
import gzip
import hashlib
import http.server
import io
import os
import socket
import struct
import threading
from importlib import resources

import numpy as np
import pytest

from fastnn.datasets import breast_cancer, diabetes, digits, fashion_mnist, fetch, mnist
from fastnn.datasets.fetch import IdxFile
from fastnn.datasets.idx import parse_idx

MNIST_NAMES = [f.name for f in mnist.FILES]


def idx_bytes(type_code, shape, values_be):
    """An IDX file written out from the format's definition: 00 00 TYPE NDIM, big-endian
    uint32 dims, big-endian values."""
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + values_be


# -- IDX parser -----------------------------------------------------------------

def test_parse_idx_reads_uint8_images_in_c_order():
    values = np.arange(24, dtype=np.uint8)
    out = parse_idx(idx_bytes(0x08, (2, 3, 4), values.tobytes()))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    assert out[1, 2, 3] == 23 and out[0, 1, 0] == 4        # C order: index = 12*i + 4*j + k
    out[0, 0, 0] = 99                                       # a writable copy, not a view of the bytes
    assert out[0, 0, 0] == 99


@pytest.mark.parametrize("code, fmt, dtype, values", [
    (0x09, "b", np.int8, [-128, -1, 0, 127]),
    (0x0B, "h", np.int16, [-32768, -2, 300, 32767]),
    (0x0C, "i", np.int32, [-2**31, -5, 70000, 2**31 - 1]),
    (0x0D, "f", np.float32, [-1.5, 0.0, 3.25, 1e30]),
    (0x0E, "d", np.float64, [-2.5, 1e-300, 7.0, 1e300]),
])
def test_parse_idx_reads_every_type_code_big_endian(code, fmt, dtype, values):
    out = parse_idx(idx_bytes(code, (4,), struct.pack(f">4{fmt}", *values)))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, np.array(values, dtype=dtype))


GOOD = idx_bytes(0x08, (2, 3), bytes(range(6)))


@pytest.mark.parametrize("data, message", [
    (b"\x00\x00", "too short"),
    (b"\x01" + GOOD[1:], "magic"),
    (GOOD[:2] + b"\x0a" + GOOD[3:], "type code 0x0a"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (GOOD[:9], "truncated header"),
    (GOOD[:-1], "bytes"),               # one value missing
    (GOOD + b"\x00", "bytes"),          # one byte too many
    (idx_bytes(0x0B, (3,), b"\x00" * 5), "bytes"),    # int16 needs 6 bytes of values
], ids=["short", "magic", "type", "ndim0", "header", "missing", "extra", "itemsize"])
def test_parse_idx_refuses_malformed_files(data, message):
    with pytest.raises(ValueError, match=message):
        parse_idx(data, name="bad.idx")


# -- MNIST from the shared folder -------------------------------------------------

def test_mnist_loads_keras_shapes_in_the_original_order(shared_data):
    folder = shared_data / "mnist"
    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=folder)
    for x, y, n in ((x_train, y_train, 60000), (x_test, y_test, 10000)):
        assert x.shape == (n, 28, 28) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.uint8
        assert set(np.unique(y)) == set(range(10))
    # The arrays are exactly the payload of the files, in the files' order.
    for arr, name in zip((x_train, y_train, x_test, y_test), MNIST_NAMES):
        payload = gzip.decompress((folder / name).read_bytes())
        header = 8 + 4 * (arr.ndim - 1)
        assert payload[header:] == arr.tobytes()


# The decompressed MD5s published in shared/data/README.md, read from the README itself.
def test_mnist_checksums_are_the_published_payload_md5s(shared_data):
    readme = (shared_data / "README.md").read_text()
    for spec in mnist.FILES:
        line = next(l for l in readme.splitlines() if spec.name in l)
        assert spec.payload_md5 in line
        payload = gzip.decompress((shared_data / "mnist" / spec.name).read_bytes())
        assert hashlib.md5(payload).hexdigest() == spec.payload_md5


def link_mnist(shared_data, folder, names=MNIST_NAMES):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        os.symlink(shared_data / "mnist" / name, folder / name)
    return folder


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty home (so an empty cache), no FASTNN_DATA_DIR, no mirrors."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(fetch.ENV_VAR, raising=False)
    monkeypatch.setattr(mnist, "MIRRORS", ())
    monkeypatch.setattr(fashion_mnist, "MIRRORS", ())
    return home


def test_mnist_found_in_fastnn_data_dir(shared_data, no_network, tmp_path, monkeypatch):
    link_mnist(shared_data, tmp_path / "data" / "mnist")
    monkeypatch.setenv(fetch.ENV_VAR, str(tmp_path / "data"))
    (x_train, _), (_, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)


def test_mnist_found_in_the_cache(shared_data, no_network):
    link_mnist(shared_data, no_network / ".fastnn" / "datasets" / "mnist")
    (_, y_train), _ = mnist.load_data()
    assert y_train.shape == (60000,)


def test_path_is_searched_alone_and_missing_files_are_named(shared_data, no_network, tmp_path, monkeypatch):
    link_mnist(shared_data, tmp_path / "data" / "mnist")
    monkeypatch.setenv(fetch.ENV_VAR, str(tmp_path / "data"))    # would succeed, but path= wins
    partial = link_mnist(shared_data, tmp_path / "partial", MNIST_NAMES[:2])
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"):
        mnist.load_data(path=partial)


def test_nothing_found_offline_says_which_files_to_put_where(no_network):
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_data()
    message = str(info.value)
    for name in MNIST_NAMES:
        assert name in message
    assert str(no_network / ".fastnn" / "datasets" / "mnist") in message
    assert fetch.ENV_VAR in message and "path=" in message


def test_recompressed_mnist_is_accepted_and_a_wrong_payload_refused(shared_data, no_network, tmp_path):
    """The checksum is of the decompressed bytes: another gzip wrapping is fine, other bytes are not."""
    folder = link_mnist(shared_data, tmp_path / "m", MNIST_NAMES[:3])
    labels = gzip.decompress((shared_data / "mnist" / MNIST_NAMES[3]).read_bytes())
    rewrapped = gzip.compress(labels, compresslevel=1, mtime=12345)
    assert rewrapped != (shared_data / "mnist" / MNIST_NAMES[3]).read_bytes()
    (folder / MNIST_NAMES[3]).write_bytes(rewrapped)
    _, (_, y_test) = mnist.load_data(path=folder)
    np.testing.assert_array_equal(y_test, np.frombuffer(labels, np.uint8, offset=8))

    changed = bytearray(labels)
    changed[8] = (changed[8] + 1) % 10                         # first test label altered: still valid IDX
    (folder / MNIST_NAMES[3]).write_bytes(gzip.compress(bytes(changed)))
    with pytest.raises(ValueError, match=f"expected {mnist.FILES[3].payload_md5}"):
        mnist.load_data(path=folder)
    (folder / MNIST_NAMES[3]).write_bytes(labels)              # not gzip at all
    with pytest.raises(ValueError, match="not a valid gzip file"):
        mnist.load_data(path=folder)


# -- Fashion-MNIST: verified by the published MD5s of the original .gz files --------

def tiny_idx_set(folder):
    """Four small IDX .gz files under the original names, and specs that match them."""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (6, 28, 28)), rng.integers(0, 10, 6),
              rng.integers(0, 256, (4, 28, 28)), rng.integers(0, 10, 4)]
    folder.mkdir(parents=True, exist_ok=True)
    specs = []
    for spec, arr in zip(fashion_mnist.FILES, arrays):
        arr = arr.astype(np.uint8)
        gz = gzip.compress(idx_bytes(0x08, arr.shape, arr.tobytes()), mtime=0)
        (folder / spec.name).write_bytes(gz)
        specs.append(IdxFile(spec.name, arr.shape, gz_md5=hashlib.md5(gz).hexdigest()))
    return arrays, tuple(specs)


def test_fashion_mnist_checks_the_gz_md5_and_refuses_recompressed_copies(no_network, tmp_path, monkeypatch):
    arrays, specs = tiny_idx_set(tmp_path / "f")
    monkeypatch.setattr(fashion_mnist, "FILES", specs)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(path=tmp_path / "f")
    for got, want in zip((x_train, y_train, x_test, y_test), arrays):
        np.testing.assert_array_equal(got, want)
    name = specs[1].name
    payload = gzip.decompress((tmp_path / "f" / name).read_bytes())
    (tmp_path / "f" / name).write_bytes(gzip.compress(payload, compresslevel=1, mtime=1))
    with pytest.raises(ValueError, match="original .gz files"):
        fashion_mnist.load_data(path=tmp_path / "f")


def test_a_file_of_the_wrong_shape_is_refused(tmp_path):
    _, specs = tiny_idx_set(tmp_path / "f")
    wrong = (specs[0],) + (IdxFile(specs[1].name, (7,), gz_md5=specs[1].gz_md5),) + specs[2:]
    with pytest.raises(ValueError, match=r"expected uint8 of shape \(7,\)"):
        fetch.load_idx_set("tiny", "Tiny", wrong, (), path=tmp_path / "f")


# -- download, against a local server only ------------------------------------------

class _Handler(http.server.SimpleHTTPRequestHandler):
    timeout = 5                      # a stuck client cannot hold the server thread

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        if self.path.startswith("/truncated/"):   # announces the whole file, sends half, hangs up
            data = (self.server.root / self.path.split("/")[-1]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def serve(monkeypatch):
    """``serve(folder)`` -> base URL of a server on 127.0.0.1 serving ``folder``; stopped at teardown."""
    monkeypatch.setattr(fetch, "TIMEOUT_S", 5.0)
    servers = []

    def start(folder):
        handler = lambda *a, **k: _Handler(*a, directory=str(folder), **k)  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.root, server.requests, server.daemon_threads = folder, [], True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        return server, f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"                 # nothing listens there: connection refused


def cache_listing(home, name="mnist"):
    folder = home / ".fastnn" / "datasets" / name
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_tries_mirrors_in_order_and_fills_the_cache(shared_data, no_network, serve, monkeypatch, capfd):
    server, url = serve(shared_data / "mnist")
    monkeypatch.setattr(mnist, "MIRRORS", (closed_port_url(), url))
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert cache_listing(no_network) == sorted(MNIST_NAMES)          # the four files, no temporaries
    assert sorted(server.requests) == sorted("/" + n for n in MNIST_NAMES)
    err = capfd.readouterr().err
    assert f"Downloading data from {url}" in err
    mb = (shared_data / "mnist" / MNIST_NAMES[0]).stat().st_size / 1e6
    assert f"{MNIST_NAMES[0]}: [{'=' * 30}] {mb:.1f}/{mb:.1f} MB" in err     # the finished progress bar
    (ref_x, ref_y), (ref_xt, ref_yt) = mnist.load_data(path=shared_data / "mnist")
    for got, want in ((x_train, ref_x), (y_train, ref_y), (x_test, ref_xt), (y_test, ref_yt)):
        np.testing.assert_array_equal(got, want)
    monkeypatch.setattr(mnist, "MIRRORS", ())                         # now served from the cache
    assert mnist.load_data()[1][1].shape == (10000,)


def test_download_with_a_wrong_checksum_is_refused_and_leaves_nothing(no_network, serve, tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    for spec in mnist.FILES:        # well-formed IDX files of the right shapes, but not MNIST
        zeros = np.zeros(spec.shape, np.uint8)
        (served / spec.name).write_bytes(gzip.compress(idx_bytes(0x08, spec.shape, zeros.tobytes())))
    _, url = serve(served)
    monkeypatch.setattr(mnist, "MIRRORS", (url,))
    with pytest.raises(FileNotFoundError, match=f"expected {mnist.FILES[0].payload_md5}"):
        mnist.load_data()
    assert cache_listing(no_network) == []


def test_a_download_cut_short_leaves_no_partial_file(shared_data, no_network, serve, monkeypatch):
    # Three files already cached: only the fourth is fetched, and its transfer is cut in half.
    link_mnist(shared_data, no_network / ".fastnn" / "datasets" / "mnist", MNIST_NAMES[:3])
    server, url = serve(shared_data / "mnist")
    monkeypatch.setattr(mnist, "MIRRORS", (url + "truncated/",))
    with pytest.raises(FileNotFoundError, match=MNIST_NAMES[3]):
        mnist.load_data()
    assert server.requests == ["/truncated/" + MNIST_NAMES[3]]
    assert cache_listing(no_network) == sorted(MNIST_NAMES[:3])


# -- small sets shipped in the package ------------------------------------------------

def shipped(name):
    raw = (resources.files("fastnn.datasets") / "data" / name).read_bytes()
    return io.StringIO((gzip.decompress(raw) if name.endswith(".gz") else raw).decode())


def split_by_hand(x, y, test_split=0.2, seed=113):
    order = np.random.RandomState(seed).permutation(len(x))
    n_train = int(len(x) * (1 - test_split))
    return (x[order][:n_train], y[order][:n_train]), (x[order][n_train:], y[order][n_train:])


def full_tables():
    dig = np.loadtxt(shipped("digits.csv.gz"), delimiter=",")
    bc = np.loadtxt(shipped("breast_cancer.csv"), delimiter=",", skiprows=1)
    dx = np.loadtxt(shipped("diabetes_data_raw.csv.gz"))
    dy = np.loadtxt(shipped("diabetes_target.csv.gz"))
    return {
        "digits": (digits, dig[:, :64].reshape(-1, 8, 8), dig[:, 64], 1437, 360, np.uint8, np.uint8),
        "breast_cancer": (breast_cancer, bc[:, :30], bc[:, 30], 455, 114, np.float64, np.int64),
        "diabetes": (diabetes, dx, dy, 353, 89, np.float64, np.float64),
    }


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "diabetes"])
def test_shipped_sets_split_as_documented(name):
    module, x, y, n_train, n_test, x_dtype, y_dtype = full_tables()[name]
    (x_train, y_train), (x_test, y_test) = module.load_data()
    assert (len(x_train), len(x_test)) == (n_train, n_test)
    assert x_train.dtype == x_dtype and y_train.dtype == y_dtype
    assert x_train.shape[1:] == x.shape[1:] and y_train.shape == (n_train,)
    (ex, ey), (etx, ety) = split_by_hand(x, y)
    np.testing.assert_array_equal(x_train, ex)
    np.testing.assert_array_equal(y_train, ey)
    np.testing.assert_array_equal(x_test, etx)
    np.testing.assert_array_equal(y_test, ety)
    assert f"test_split={0.2}" in module.load_data.__doc__ and "seed=113" in module.load_data.__doc__


def test_shipped_set_split_arguments():
    (a, _), (b, _) = diabetes.load_data(test_split=0.5, seed=1)
    assert (len(a), len(b)) == (221, 221)
    assert not np.array_equal(diabetes.load_data(seed=1)[0][0], diabetes.load_data(seed=2)[0][0])
    for bad in (0, 1, 1.5, -0.1, "0.2", True):
        with pytest.raises(ValueError, match="test_split"):
            digits.load_data(test_split=bad)
    with pytest.raises(ValueError, match="seed"):
        digits.load_data(seed=-1)


def test_shipped_labels_are_what_the_descriptions_say():
    (_, y), (_, yt) = digits.load_data()
    assert set(np.concatenate([y, yt])) == set(range(10))
    (_, y), (_, yt) = breast_cancer.load_data()
    y = np.concatenate([y, yt])
    assert (np.sum(y == 0), np.sum(y == 1)) == (212, 357)      # breast_cancer.rst: 212 malignant, 357 benign
    (x, y), (xt, yt) = diabetes.load_data()
    x, y = np.concatenate([x, xt]), np.concatenate([y, yt])
    assert (y.min(), y.max()) == (25, 346)                        # load_data's docstring: 25..346
    assert 18 <= x[:, 0].min() and x[:, 0].max() <= 100           # raw units: age in years, not scaled


def test_datasets_are_exposed_as_in_keras():
    import fastnn as keras
    assert keras.datasets.mnist.load_data is mnist.load_data
    assert keras.datasets.fashion_mnist.load_data is fashion_mnist.load_data
    assert len(fashion_mnist.CLASS_NAMES) == 10
