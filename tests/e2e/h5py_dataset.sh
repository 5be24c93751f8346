#!/usr/bin/env bash
# Cross-checks the HDF5 dataset format and the .npy reader against independent implementations
# (h5py and numpy under /usr/bin/python3):
#  (a) a dataset written by our DatasetWriter (2D and 3D) is read by h5py: every value, attribute,
#      dtype, chunk (one sample per chunk) and filter (shuffle, gzip level 4, then a Fletcher32
#      checksum) as documented in include/unet/data/hdf5_dataset.h; strings are fixed-length UTF-8
#      (h5py gives bytes); also with HDF5_USE_FILE_LOCKING=FALSE;
#  (a') a dataset written by h5py (fixed- and variable-length strings) is read by our reader; an
#      h5py file of version 1 (the first wave's format) is still read; another format_version,
#      and Intel's unversioned layout, are refused;
#  (b) .npy files written by numpy ('<f4', '<f8', '|u1', headers 1.0/2.0/3.0) read by read_npy
#      give numpy's values; unsupported ones fail with one line; numpy loads write_npy's output.
set -u
BUILD=${BUILD:-build}
PY=/usr/bin/python3
fail() { echo "FAIL: $*"; exit 1; }

if ! "$PY" -c "import h5py, numpy" 2>/dev/null; then
  scripts/install_deps.sh || fail "scripts/install_deps.sh failed"
  "$PY" -c "import h5py, numpy" || fail "h5py/numpy missing for $PY"
fi
[ -f "$BUILD/libunet.a" ] || make -j2 "$BUILD/libunet.a" >/dev/null || fail "cannot build $BUILD/libunet.a"

HELPER=$BUILD/e2e/h5_write_sample
SRC=tests/e2e/h5_write_sample.cpp
if [ ! -x "$HELPER" ] || [ "$SRC" -nt "$HELPER" ] || [ "$BUILD/libunet.a" -nt "$HELPER" ] ||
   [ include/unet/data/hdf5_dataset.h -nt "$HELPER" ] || [ include/unet/data/npy.h -nt "$HELPER" ]; then
  mkdir -p "$BUILD/e2e"
  # shellcheck disable=SC2046
  g++ -std=c++17 -O1 -Iinclude -I/usr/include/nifti $(pkg-config --cflags hdf5-serial) "$SRC" "$BUILD/libunet.a" \
      -o "$HELPER" -ldnnl -lboost_program_options $(pkg-config --libs hdf5-serial) -lniftiio -lznz -lz -lpng -lgif \
      -fopenmp -lpthread || fail "cannot compile $SRC"
fi

T=$(mktemp -d /tmp/unet_h5py_XXXXXX)
trap 'rm -rf "$T"' EXIT

# ---- (a) our writer -> h5py --------------------------------------------------------------------
"$HELPER" write "$T/d3.h5" 3d >/dev/null || fail "helper write 3d"
HDF5_USE_FILE_LOCKING=FALSE "$HELPER" write "$T/d2.h5" 2d >/dev/null || fail "helper write 2d without file locking"
[ -e "$T/d3.h5.tmp" ] && fail "temporary file left behind"

"$PY" - "$T" <<'EOF' || fail "h5py does not read our files as documented"
import json, os, sys
import h5py, numpy as np

T = sys.argv[1]
SPLITS = ["train", "val", "test"]

def formula(s, i, n):
    k = np.arange(n, dtype=np.int64)
    return (((k * 37 + i * 101 + s * 1009) % 2001 - 1000) / 64.0).astype(np.float32)

def mask_formula(s, i, n):
    k = np.arange(n, dtype=np.int64)
    return ((k + i + s) % 3 == 0).astype(np.uint8)

def case_formula(s, i):
    return ("BraTS_µ_" if i == 1 else "BRATS_") + str(s * 100 + i)

def check(path, mode, channels, spatial, counts):
    with h5py.File(path, "r") as f:
        # String attributes are fixed-length UTF-8 (no variable-length strings in our files):
        # h5py returns them as bytes.
        for k in ["layout", "mode", "normalization", "crop", "source", "labels", "mask_labels"]:
            info = h5py.check_string_dtype(f.attrs.get_id(k).dtype)
            assert info is not None and info.length is not None and info.encoding == "utf-8", (k, info)
            assert isinstance(f.attrs[k], bytes), (k, type(f.attrs[k]))
        a = {k: (v.decode("utf-8") if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        assert set(a.keys()) == {"format_version", "layout", "mode", "channels", "normalization", "crop",
                                 "split_seed", "source", "labels", "mask_labels"}, sorted(a.keys())
        assert a["format_version"] == 2 and np.issubdtype(a["format_version"].dtype, np.integer)
        assert a["mask_labels"] == "binary", a["mask_labels"]   # the writer's default; unet_prepare: msd
        assert a["channels"] == channels and np.issubdtype(a["channels"].dtype, np.integer)
        assert a["split_seed"] == -1234567890123 and a["split_seed"].dtype == np.int64, a["split_seed"]
        for k in ["layout", "mode", "normalization", "crop", "source", "labels", "mask_labels"]:
            assert isinstance(a[k], str), (k, type(a[k]))
        assert a["layout"] == ("NCDHW" if mode == "3d" else "NCHW")
        assert a["mode"] == mode
        assert a["normalization"] == "z-score per channel over non-zero (brain) voxels"
        assert a["crop"] == ("depth 2..154" if mode == "3d" else "")
        assert a["source"] == "h5_write_sample e2e"
        assert json.loads(a["labels"]) == {"0": "background", "1": "tumour"}
        present = [s for s in SPLITS if counts[SPLITS.index(s)] > 0]
        assert sorted(f.keys()) == sorted(present), list(f.keys())
        V = int(np.prod(spatial))
        for s in present:
            sn, n = SPLITS.index(s), counts[SPLITS.index(s)]
            g = f[s]
            assert sorted(g.keys()) == ["case_ids", "images", "masks"], list(g.keys())
            for name, dtype, c in [("images", np.float32, channels), ("masks", np.uint8, 1)]:
                d = g[name]
                assert d.dtype == dtype, (s, name, d.dtype)
                assert d.dtype.byteorder in "<=|", d.dtype.byteorder
                assert d.shape == (n, c, *spatial), (s, name, d.shape)
                assert d.chunks == (1, c, *spatial), (s, name, d.chunks)
                assert d.shuffle and d.compression == "gzip" and d.compression_opts == 4, (s, name)
                assert d.fletcher32, (s, name)
                plist = d.id.get_create_plist()
                assert plist.get_nfilters() == 3
                assert plist.get_filter(0)[0] == h5py.h5z.FILTER_SHUFFLE
                assert plist.get_filter(1)[0] == h5py.h5z.FILTER_DEFLATE
                assert plist.get_filter(2)[0] == h5py.h5z.FILTER_FLETCHER32
                assert d.id.get_num_chunks() == n, (s, name, d.id.get_num_chunks())
                offsets = sorted(d.id.get_chunk_info(j).chunk_offset for j in range(n))
                assert offsets == [(j, 0) + (0,) * len(spatial) for j in range(n)], offsets
            for i in range(n):
                img = g["images"][i]
                assert np.array_equal(img.reshape(-1), formula(sn, i, channels * V)), (s, i)
                assert np.array_equal(g["masks"][i].reshape(-1), mask_formula(sn, i, V)), (s, i)
            ids = g["case_ids"]
            info = h5py.check_string_dtype(ids.dtype)
            assert info is not None and info.length is not None and info.encoding == "utf-8", info
            assert ids.shape == (n,) and ids.fletcher32
            assert list(ids.asstr()[()]) == [case_formula(sn, i) for i in range(n)], list(ids.asstr()[()])

check(os.path.join(T, "d3.h5"), "3d", 4, (5, 8, 7), [3, 2, 0])
os.environ["HDF5_USE_FILE_LOCKING"] = "FALSE"
check(os.path.join(T, "d2.h5"), "2d", 3, (9, 11), [3, 2, 0])
print("h5py read our 2D and 3D files")
EOF

# ---- (a') h5py writer -> our reader --------------------------------------------------------------
"$PY" - "$T" <<'EOF' || fail "could not write the h5py files"
import os, sys
import h5py, numpy as np
T = sys.argv[1]
rng = np.random.default_rng(3)
with h5py.File(os.path.join(T, "py.h5"), "w") as f:
    f.attrs["format_version"] = 1                    # int64, as h5py writes Python ints
    f.attrs["layout"] = np.bytes_(b"NCDHW")          # fixed-length string
    f.attrs["mode"] = "3d"                           # variable-length UTF-8
    f.attrs["channels"] = np.int16(2)
    f.attrs["normalization"] = "none"
    f.attrs["crop"] = np.bytes_(b"")
    f.attrs["split_seed"] = np.int64(-7)
    f.attrs["source"] = "h5py µ"
    f.attrs["labels"] = '{"1": "tumour"}'
    for split, n in [("train", 3), ("test", 2)]:
        g = f.create_group(split)
        img = rng.standard_normal((n, 2, 4, 6, 5)).astype(np.float32)
        msk = (rng.random((n, 1, 4, 6, 5)) < 0.3).astype(np.uint8)
        g.create_dataset("images", data=img, chunks=(1, 2, 4, 6, 5), compression="gzip", shuffle=True)
        g.create_dataset("masks", data=msk, chunks=(1, 1, 4, 6, 5), compression="gzip")
        if split == "train":
            g.create_dataset("case_ids", data=["a", "bé", "c" * 40], dtype=h5py.string_dtype())
        else:
            g.create_dataset("case_ids", data=np.array([b"x1", b"y22"], dtype="S3"))  # fixed length
        np.save(os.path.join(T, f"want_{split}_images.npy"), img)
        np.save(os.path.join(T, f"want_{split}_masks.npy"), msk)
with h5py.File(os.path.join(T, "v3.h5"), "w") as f:
    f.attrs["format_version"] = 3
    f.attrs["layout"] = "NCDHW"
with h5py.File(os.path.join(T, "intel.h5"), "w") as f:
    f.create_dataset("imgs_train", data=np.zeros((2, 8, 8, 4), np.float32))
EOF
mkdir -p "$T/out"
"$HELPER" read "$T/py.h5" "$T/out" || fail "our reader cannot read the h5py-written file"
"$PY" - "$T" <<'EOF' || fail "our reader disagrees with h5py"
import os, sys
import numpy as np
T = sys.argv[1]
attrs = dict(l.rstrip("\n").split("=", 1) for l in open(os.path.join(T, "out", "attrs.txt"), encoding="utf-8"))
assert attrs == {"mode": "3d", "channels": "2", "normalization": "none", "crop": "", "split_seed": "-7",
                 "source": "h5py µ", "labels": '{"1": "tumour"}', "spatial": "4,6,5"}, attrs
for split in ["train", "test"]:
    for what in ["images", "masks"]:
        got = np.load(os.path.join(T, "out", f"{split}_{what}.npy"))
        want = np.load(os.path.join(T, f"want_{split}_{what}.npy")).astype(np.float32)
        assert got.dtype == np.float32 and np.array_equal(got, want), (split, what)
assert not os.path.exists(os.path.join(T, "out", "val_images.npy"))
ids = {s: open(os.path.join(T, "out", f"{s}_case_ids.txt"), encoding="utf-8").read().split("\n")[:-1]
       for s in ["train", "test"]}
assert ids == {"train": ["a", "bé", "c" * 40], "test": ["x1", "y22"]}, ids
print("our reader read the h5py file")
EOF

expect_error() {  # expect_error "text" helper-args...: exit 1, one line, names the file, contains text
  local want=$1; shift
  local out rc
  out=$("$HELPER" "$@" 2>&1 >/dev/null); rc=$?
  [ "$rc" -eq 1 ] || fail "helper $* exited $rc (want 1): $out"
  [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "helper $*: more than one line: $out"
  printf '%s' "$out" | grep -qF -- "$2" || fail "helper $*: message does not name $2: $out"
  printf '%s' "$out" | grep -qF -- "$want" || fail "helper $*: message lacks '$want': $out"
}
expect_error "format_version 3, this build reads format_version 1 and 2" read "$T/v3.h5" "$T/out"
expect_error "not a unet dataset" read "$T/intel.h5" "$T/out"
echo "not hdf5" > "$T/text.h5"
expect_error "not an HDF5 file" read "$T/text.h5" "$T/out"

# ---- (a'') another tool's file chunked finer than a sample, its chunk index damaged -------------
# h5py's default (libver "earliest") indexes chunks in a version-1 B-tree without checksums. Every
# chunk of every sample is looked up at open, not only each sample's first: the entry of the chunk
# [1, 1, 2, 0, 0] (sample 1, channel 1, second depth half) is damaged twice, once its stored size
# (shorter than an uncompressed chunk, which HDF5 would copy whole out of a shorter read) and once
# its address (past the end of the file, which HDF5 would allocate and read).
"$PY" - "$T" <<'EOF2' || fail "could not write the finely chunked h5py files"
import os, struct, sys
import h5py, numpy as np
T = sys.argv[1]
def write(name):
    path = os.path.join(T, name)
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = 1
        f.attrs["layout"] = "NCDHW"
        f.attrs["mode"] = "3d"
        f.attrs["channels"] = 2
        g = f.create_group("train")
        g.create_dataset("images", data=np.ones((3, 2, 4, 6, 5), np.float32), chunks=(1, 1, 2, 6, 5))
        g.create_dataset("masks", data=np.zeros((3, 1, 4, 6, 5), np.uint8), chunks=(1, 1, 4, 6, 5))
        g.create_dataset("case_ids", data=np.array([b"a", b"b", b"c"], dtype="S1"))
    return path
write("fine.h5")  # undamaged: it must read
chunk_bytes = 1 * 1 * 2 * 6 * 5 * 4
# A B-tree key of a chunk: its stored size, its filter mask, its offset (rank + 1 values); the
# address of the chunk follows the key.
key = struct.pack("<II6Q", chunk_bytes, 0, 1, 1, 2, 0, 0, 0)
for name, patch in [("fine_short.h5", lambda b, at: struct.pack_into("<I", b, at, 100)),
                    ("fine_past_end.h5", lambda b, at: struct.pack_into("<Q", b, at + len(key), 1 << 40))]:
    path = write(name)
    b = bytearray(open(path, "rb").read())
    at = b.find(key)
    assert at > 0 and b.find(key, at + 1) < 0, "the chunk's B-tree key is not in the file once"
    patch(b, at)
    open(path, "wb").write(b)
# Chunks of one voxel: more chunks (4.2 million, none written) than the reader looks up at open.
with h5py.File(os.path.join(T, "tiny_chunks.h5"), "w") as f:
    f.attrs["format_version"] = 1
    f.attrs["layout"] = "NCDHW"
    f.attrs["mode"] = "3d"
    f.attrs["channels"] = 1
    g = f.create_group("train")
    g.create_dataset("images", shape=(1, 1, 256, 128, 129), dtype=np.float32, chunks=(1, 1, 1, 1, 1))
    g.create_dataset("masks", shape=(1, 1, 256, 128, 129), dtype=np.uint8)
    g.create_dataset("case_ids", data=np.array([b"a"], dtype="S1"))
EOF2
"$HELPER" read "$T/fine.h5" "$T/out" || fail "our reader cannot read a finely chunked h5py file"
expect_error "/train/images: the chunk of sample 1 at [1, 1, 2, 0, 0] is stored in 100 bytes without compression, where a chunk holds 240 (damaged?)" read "$T/fine_short.h5" "$T/out"
expect_error "/train/images: the chunk of sample 1 at [1, 1, 2, 0, 0] claims 240 bytes at offset 1099511627776, past the end of the file" read "$T/fine_past_end.h5" "$T/out"
expect_error "/train/images: chunk shape [1, 1, 1, 1, 1] cuts the shape [1, 1, 256, 128, 129] into more than 4194304 chunks, more than this reader checks" read "$T/tiny_chunks.h5" "$T/out"

# ---- (b) numpy -> read_npy, write_npy -> numpy ---------------------------------------------------
"$PY" - "$T" <<'EOF' || fail "could not write the numpy files"
import os, sys
import numpy as np
from numpy.lib import format as npf
T = sys.argv[1]
rng = np.random.default_rng(5)
cases = {
    "f4_v1": rng.standard_normal((3, 5)).astype("<f4"),
    "f8_v1": rng.standard_normal((2, 3, 4, 2)).astype("<f8"),           # rounds to float32
    "u1_v1": rng.integers(0, 256, (4, 6)).astype("|u1"),
    "imgs_intel": rng.standard_normal((2, 16, 16, 4)).astype("<f4"),    # N x H x W x C
    "msks_intel": (rng.random((2, 16, 16, 1)) < 0.2).astype("<f4"),
    "scalar_v1": np.array(2.5, "<f4"),
    "empty_v1": np.zeros((0, 3), "<f4"),
}
for name, arr in cases.items():
    np.save(os.path.join(T, name + ".npy"), arr)
for version, arr in [((2, 0), rng.standard_normal((7, 3)).astype("<f4")),
                     ((3, 0), rng.standard_normal((2, 2, 2)).astype("<f8")),
                     ((2, 0), rng.integers(0, 256, (5,)).astype("|u1"))]:
    name = f"{arr.dtype.str[1:]}_v{version[0]}"
    with open(os.path.join(T, name + ".npy"), "wb") as fp:
        npf.write_array(fp, arr, version=version)
    cases[name] = arr
with open(os.path.join(T, "list.txt"), "w") as f:
    f.write("\n".join(cases) + "\n")
np.save(os.path.join(T, "bad_be.npy"), np.arange(4, dtype=">f4"))
np.save(os.path.join(T, "bad_fortran.npy"), np.asfortranarray(np.ones((2, 3), "<f4")))
np.save(os.path.join(T, "bad_i4.npy"), np.arange(4, dtype="<i4"))
np.save(os.path.join(T, "bad_trunc.npy"), np.arange(100, dtype="<f4"))
with open(os.path.join(T, "bad_trunc.npy"), "r+b") as fp:
    fp.truncate(os.path.getsize(os.path.join(T, "bad_trunc.npy")) - 10)
EOF
while read -r name; do
  "$HELPER" npy "$T/$name.npy" "$T/$name.bin" > "$T/$name.txt" || fail "read_npy failed on numpy's $name.npy"
done < "$T/list.txt"
"$PY" - "$T" <<'EOF' || fail "read_npy disagrees with numpy"
import os, sys
import numpy as np
T = sys.argv[1]
for name in open(os.path.join(T, "list.txt")).read().split():
    arr = np.load(os.path.join(T, name + ".npy"))
    dtype, _, shape = open(os.path.join(T, name + ".txt")).read().strip().partition(" ")
    assert dtype == arr.dtype.str, (name, dtype, arr.dtype.str)
    assert shape == ",".join(map(str, arr.shape)), (name, shape, arr.shape)
    got = np.fromfile(os.path.join(T, name + ".bin"), dtype="<f4")
    assert np.array_equal(got, arr.astype(np.float32).reshape(-1)), name
print("read_npy matches numpy on", len(open(os.path.join(T, "list.txt")).read().split()), "files")
EOF
expect_error "big-endian dtype '>f4'" npy "$T/bad_be.npy" "$T/x.bin"
expect_error "fortran_order True" npy "$T/bad_fortran.npy" "$T/x.bin"
expect_error "dtype '<i4' not supported" npy "$T/bad_i4.npy" "$T/x.bin"
expect_error "truncated data" npy "$T/bad_trunc.npy" "$T/x.bin"
expect_error "bad magic" npy "$T/text.h5" "$T/x.bin"

"$HELPER" write-npy "$T/ours.npy" || fail "write_npy"
"$PY" - "$T" <<'EOF' || fail "numpy does not read write_npy's file"
import os, sys
import numpy as np
from numpy.lib import format as npf
T = sys.argv[1]
with open(os.path.join(T, "ours.npy"), "rb") as fp:
    assert npf.read_magic(fp) == (1, 0)
    shape, fortran, dtype = npf.read_array_header_1_0(fp)
    assert (shape, fortran, dtype.str) == ((2, 3, 4), False, "<f4"), (shape, fortran, dtype)
    assert fp.tell() % 64 == 0, fp.tell()
a = np.load(os.path.join(T, "ours.npy"))
k = np.arange(24)
assert np.array_equal(a.reshape(-1), (((k * 37) % 2001 - 1000) / 64.0).astype(np.float32))
print("numpy reads write_npy's file")
EOF
echo "h5py/numpy cross-check passed"
