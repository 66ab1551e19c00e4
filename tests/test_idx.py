"""The IDX reader: well-formed files of every type round-trip, malformed ones fail clearly."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from robustkit.errors import DataError
from robustkit.idx import read_idx

# Type code → big-endian dtype, written out independently of robustkit.idx.
TYPE_CODES = [
    (0x08, ">u1"),
    (0x09, ">i1"),
    (0x0B, ">i2"),
    (0x0C, ">i4"),
    (0x0D, ">f4"),
    (0x0E, ">f8"),
]


def idx_bytes(values: np.ndarray, code: int) -> bytes:
    """An IDX file's bytes: magic 00 00 <code> <ndim>, big-endian uint32 sizes, payload."""
    header = struct.pack(">BBBB", 0, 0, code, values.ndim)
    header += struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.tobytes()


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, gzip-compressed when the name ends in .gz."""
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def read_error(path: Path) -> str:
    """The one-line message read_idx raises for ``path``; fails the test if none."""
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


@pytest.fixture(params=["raw.idx", "packed.idx.gz"])
def filename(request) -> str:
    return request.param


@pytest.mark.parametrize(("code", "dtype"), TYPE_CODES)
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5)])
def test_round_trip_every_type(tmp_path, filename, code, dtype, shape):
    rng = np.random.default_rng(0)
    low, high = (0, 256) if dtype[1] == "u" else (-128, 128)  # within every type's range
    values = rng.integers(low, high, size=shape).astype(np.float64)
    if dtype[1] == "f":
        values += 0.25  # a fraction that float32 and float64 store exactly
    values = values.astype(dtype)  # big-endian, as an IDX file stores it
    path = write(tmp_path / filename, idx_bytes(values, code))
    result = read_idx(path)
    assert result.shape == shape
    assert result.dtype == np.dtype(dtype).newbyteorder("=")
    assert result.dtype.isnative
    np.testing.assert_array_equal(result, values)


def test_hand_written_bytes_are_big_endian(tmp_path, filename):
    # 0x0B = signed 16-bit, 1 dimension of 3: 0x0100 = 256, 0xFFFF = -1, 0x0002 = 2.
    data = bytes.fromhex("00000B01 00000003 0100 FFFF 0002")
    result = read_idx(write(tmp_path / filename, data))
    assert result.tolist() == [256, -1, 2]


def test_hand_written_image_shape(tmp_path, filename):
    # ubyte, 3 dimensions 1×2×3, values 0..5 in C order.
    data = bytes.fromhex("00000803 00000001 00000002 00000003 000102030405")
    result = read_idx(write(tmp_path / filename, data))
    assert result.tolist() == [[[0, 1, 2], [3, 4, 5]]]


def test_result_is_writable(tmp_path, filename):
    path = write(tmp_path / filename, idx_bytes(np.arange(4, dtype=">i4"), 0x0C))
    result = read_idx(path)
    result[0] = 9  # third-party code may normalise in place
    assert result.tolist() == [9, 1, 2, 3]


def test_accepts_str_path(tmp_path):
    path = write(tmp_path / "labels.idx", idx_bytes(np.arange(3, dtype=np.uint8), 0x08))
    assert read_idx(str(path)).tolist() == [0, 1, 2]


def test_gzip_content_without_gz_suffix_is_decompressed(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(5, dtype=np.uint8), 0x08)))
    assert read_idx(path).tolist() == [0, 1, 2, 3, 4]


def test_zero_length_dimension_is_an_empty_array(tmp_path, filename):
    path = write(tmp_path / filename, bytes.fromhex("00000802 00000000 0000001C"))
    assert read_idx(path).shape == (0, 28)


def test_wrong_magic_number(tmp_path, filename):
    data = idx_bytes(np.arange(3, dtype=np.uint8), 0x08)
    path = write(tmp_path / filename, b"\x01\x00" + data[2:])
    message = read_error(path)
    assert "wrong magic number 0x01000801" in message
    assert "expected an IDX file" in message


def test_png_is_not_an_idx_file(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    assert "wrong magic number 0x89504E47" in read_error(path)


def test_unknown_type_code(tmp_path, filename):
    data = idx_bytes(np.arange(3, dtype=np.uint8), 0x07)
    message = read_error(write(tmp_path / filename, data))
    assert "unknown IDX data type code 0x07" in message
    assert "0x08 ubyte" in message and "0x0E double" in message


def test_zero_dimensions(tmp_path, filename):
    message = read_error(write(tmp_path / filename, bytes.fromhex("00000800 01")))
    assert "0 dimensions" in message


def test_truncated_payload(tmp_path, filename):
    data = idx_bytes(np.zeros((2, 5), dtype=">i2"), 0x0B)  # 20 bytes of data
    message = read_error(write(tmp_path / filename, data[:-5]))
    assert "truncated: header says 20 bytes of data, found 15" in message


def test_truncated_header(tmp_path, filename):
    data = idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8), 0x08)
    message = read_error(write(tmp_path / filename, data[:10]))
    assert "truncated" in message and "3 dimensions" in message


def test_shorter_than_magic_number(tmp_path, filename):
    message = read_error(write(tmp_path / filename, b"\x00\x00"))
    assert "truncated" in message


def test_trailing_bytes(tmp_path, filename):
    data = idx_bytes(np.arange(6, dtype=np.uint8), 0x08)
    message = read_error(write(tmp_path / filename, data + b"\x00\x01\x02"))
    assert "3 trailing bytes" in message
    assert "header says 6 bytes of data, found 9" in message


def test_garbage_named_gz(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(b"this is not gzip at all")
    assert "not a valid gzip file" in read_error(path)


def test_truncated_gzip_stream(tmp_path):
    packed = gzip.compress(idx_bytes(np.arange(1000, dtype=">i4"), 0x0C))
    path = tmp_path / "cut.idx.gz"
    path.write_bytes(packed[: len(packed) // 2])
    assert "not a valid gzip file" in read_error(path)


def test_gzip_with_bad_checksum(tmp_path):
    packed = bytearray(gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8), 0x08)))
    packed[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path = tmp_path / "crc.idx.gz"
    path.write_bytes(bytes(packed))
    assert "not a valid gzip file" in read_error(path)


def test_empty_file(tmp_path, filename):
    path = tmp_path / filename
    path.write_bytes(b"")
    assert "empty file" in read_error(path)


def test_gzip_of_nothing(tmp_path):
    path = write(tmp_path / "nothing.gz", b"")
    assert "empty" in read_error(path)


def test_missing_file(tmp_path):
    message = read_error(tmp_path / "absent.idx.gz")
    assert "cannot read" in message


def test_real_label_file(shared_data_dir):
    labels = read_idx(shared_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,)
    assert labels.dtype == np.uint8
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first MNIST test digits
