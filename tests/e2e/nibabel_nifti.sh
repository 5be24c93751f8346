#!/usr/bin/env bash
# NIfTI files written the way other tools write them (nibabel: int16 with scl_slope 2 / scl_inter
# 10, nibabel's own int16 scaling, big-endian '>i2' and '>f4', float64, uint8, NaN, NIfTI-2, .nii
# and .nii.gz, 2D, 3D and 4D) read through unet::read_nifti (tests/e2e/nifti_dump.cpp) give the
# same values as nibabel's get_fdata(), in our C x D x H x W order. Files we write with
# write_nifti (the synthetic dataset) read back in nibabel with the same values. Truncated and
# non-NIfTI files end with one line on stderr and exit code 1, never a crash.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3
fail() { echo "FAIL: $*"; exit 1; }

if ! "$PY" -c 'import nibabel, numpy' 2>/dev/null; then
  scripts/install_deps.sh
  "$PY" -c 'import nibabel, numpy' || fail "$PY cannot import nibabel and numpy"
fi

[ -f "$BUILD/libunet.a" ] || make -j2 BUILD="$BUILD" "$BUILD/libunet.a" >/dev/null
DUMP="$BUILD/nifti_dump"
if [ ! -x "$DUMP" ] || [ "$DUMP" -ot "$BUILD/libunet.a" ] || [ "$DUMP" -ot tests/e2e/nifti_dump.cpp ]; then
  g++ -std=c++17 -O1 -Iinclude -I/usr/include/nifti $(pkg-config --cflags hdf5-serial) tests/e2e/nifti_dump.cpp \
      "$BUILD/libunet.a" -o "$DUMP" -ldnnl -lboost_program_options $(pkg-config --libs hdf5-serial) \
      -lniftiio -lznz -lz -lpng -lgif -fopenmp -lpthread || fail "cannot build $DUMP"
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

"$PY" - "$DUMP" "$TMP" <<'EOF'
import gzip, io, os, subprocess, sys
import numpy as np
import nibabel as nib

dump, tmp = sys.argv[1], sys.argv[2]
failures = []
rng = np.random.default_rng(20240601)


def ours(path):
    raw = os.path.join(tmp, "out.raw")
    r = subprocess.run([dump, path, raw], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"nifti_dump {path} exited {r.returncode}: {r.stderr.strip()}")
    shape = tuple(int(v) for v in r.stdout.split())
    return np.fromfile(raw, dtype="<f4").reshape(shape)


def expected(path):
    """nibabel's scaled values, reordered (x, y, z[, t]) -> (C, D, H, W)."""
    d = nib.load(path).get_fdata()
    if d.ndim == 2:
        return d.T[None, None]
    if d.ndim == 3:
        return d.transpose(2, 1, 0)[None]
    return d.transpose(3, 2, 1, 0)


def compare(name, path, endian=None):
    if endian is not None:  # make sure the file really is in the byte order the case claims
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            head = f.read(4)
        got = ">" if head in (b"\x00\x00\x01\x5c", b"\x00\x00\x02\x1c") else "<"
        if got != endian:
            failures.append(f"{name}: file is {got}-endian, wanted {endian}")
            return
    try:
        a = ours(path)
    except RuntimeError as e:
        failures.append(f"{name}: {e}")
        return
    b = expected(path)
    if a.shape != b.shape:
        failures.append(f"{name}: shape {a.shape}, nibabel {b.shape}")
        return
    b32 = b.astype(np.float32)
    tol = 1e-6 * max(1.0, float(np.nanmax(np.abs(b32))) if np.isfinite(b32).any() else 1.0)
    if not np.allclose(a, b32, rtol=1e-6, atol=tol, equal_nan=True):
        i = np.unravel_index(np.nanargmax(np.abs(a - b32)), a.shape)
        failures.append(f"{name}: value mismatch at {i}: ours {a[i]}, nibabel {b32[i]}")
        return
    print(f"ok {name}: shape {a.shape}, range [{np.nanmin(a):.4g}, {np.nanmax(a):.4g}]")


def write_raw(path, raw, dtype, endian, slope, inter):
    """A single-file NIfTI-1 with exactly this scl_slope / scl_inter (nibabel's writer would pick
    its own scaling), header from nibabel, data laid out x fastest."""
    dt = np.dtype(dtype).newbyteorder(endian)
    hdr = nib.Nifti1Header(endianness=endian)
    hdr.set_data_shape(raw.shape)
    hdr.set_data_dtype(dt)
    hdr.set_qform(np.eye(4), code=1)
    hdr["scl_slope"] = slope
    hdr["scl_inter"] = inter
    hdr["vox_offset"] = 352
    buf = io.BytesIO()
    hdr.write_to(buf)
    buf.write(b"\0" * (352 - buf.tell()))
    buf.write(np.asarray(raw, dtype=dt).tobytes(order="F"))
    with (gzip.open if path.endswith(".gz") else open)(path, "wb") as f:
        f.write(buf.getvalue())
    img = nib.load(path)
    assert (img.dataobj.slope, img.dataobj.inter) == (slope, inter), (img.dataobj.slope, img.dataobj.inter)


def save(path, data, dtype=None, endian="<", cls=nib.Nifti1Image):
    hdr = cls.header_class(endianness=endian)
    img = cls(data, np.diag([1.0, 1.0, 1.0, 1.0]), header=hdr)
    if dtype is not None:
        img.set_data_dtype(np.dtype(dtype).newbyteorder(endian))
    nib.save(img, path)


P = lambda name: os.path.join(tmp, name)

# int16 with scl_slope 2, scl_inter 10, both byte orders and compressions, 3D and 4D.
raw3 = rng.integers(-3000, 3000, size=(9, 7, 5), dtype=np.int16)
raw4 = rng.integers(-3000, 3000, size=(9, 7, 5, 4), dtype=np.int16)
write_raw(P("i16_slope_le.nii"), raw3, "i2", "<", 2.0, 10.0)
compare("int16 slope 2 inter 10, little-endian, .nii, 3D", P("i16_slope_le.nii"), "<")
write_raw(P("i16_slope_be.nii.gz"), raw4, "i2", ">", 2.0, 10.0)
compare("int16 slope 2 inter 10, big-endian, .nii.gz, 4D", P("i16_slope_be.nii.gz"), ">")
write_raw(P("i16_slope_be.nii"), raw3, "i2", ">", 2.0, 10.0)
compare("int16 slope 2 inter 10, big-endian, .nii, 3D", P("i16_slope_be.nii"), ">")

# nibabel's own int16 scaling of float data (what converters typically produce).
f4 = (rng.standard_normal((11, 8, 6, 4)) * 300 + 50).astype(np.float32)
save(P("i16_auto.nii.gz"), f4, "i2")
img = nib.load(P("i16_auto.nii.gz"))
print(f"   nibabel chose slope {img.dataobj.slope:.6g}, inter {img.dataobj.inter:.6g}")
compare("int16 with nibabel's scaling, .nii.gz, 4D", P("i16_auto.nii.gz"), "<")

# Big-endian float32, 3D and 4D.
save(P("f4_be.nii"), f4[..., 0], "f4", ">")
compare("float32 big-endian '>f4', .nii, 3D", P("f4_be.nii"), ">")
save(P("f4_be4d.nii.gz"), f4, "f4", ">")
compare("float32 big-endian '>f4', .nii.gz, 4D", P("f4_be4d.nii.gz"), ">")

# float64, uint8 labels, int16 big-endian unscaled, 2D, NaN.
save(P("f8.nii.gz"), rng.standard_normal((10, 9, 8)) * 1e3, "f8")
compare("float64, .nii.gz, 3D", P("f8.nii.gz"), "<")
labels = rng.integers(0, 4, size=(12, 10, 7)).astype(np.uint8)
save(P("u8.nii"), labels, "u1")
compare("uint8 labels, .nii, 3D", P("u8.nii"), "<")
save(P("u8.nii.gz"), labels, "u1")
compare("uint8 labels, .nii.gz, 3D", P("u8.nii.gz"), "<")
save(P("i2_be.nii.gz"), raw4, "i2", ">")
compare("int16 big-endian unscaled, .nii.gz, 4D", P("i2_be.nii.gz"), ">")
save(P("f4_2d.nii"), f4[:, :, 0, 0], "f4")
compare("float32 2D, .nii", P("f4_2d.nii"), "<")
nan = f4[..., 0].copy()
nan[1, 2, 3] = np.nan
nan[0, 0, 0] = np.inf
save(P("f4_nan.nii"), nan, "f4")
compare("float32 with NaN and Inf, .nii", P("f4_nan.nii"), "<")

# A header extension moves the data further out (vox_offset > 352).
img = nib.Nifti1Image(f4[..., :2], np.eye(4))
img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"written by another tool " * 20))
img.set_data_dtype(np.float32)
nib.save(img, P("ext.nii.gz"))
assert nib.load(P("ext.nii.gz")).dataobj.offset > 352
compare("float32 with a header extension (vox_offset > 352), .nii.gz, 4D", P("ext.nii.gz"), "<")

# NIfTI-2 (niftilib's NIfTI-1 reader cannot read it; ours decodes the header itself).
save(P("n2_i2.nii.gz"), raw4, "i2", ">", cls=nib.Nifti2Image)
compare("NIfTI-2 int16 big-endian, .nii.gz, 4D", P("n2_i2.nii.gz"), ">")
save(P("n2_f8.nii"), rng.standard_normal((6, 5, 4)), "f8", "<", cls=nib.Nifti2Image)
compare("NIfTI-2 float64, .nii, 3D", P("n2_f8.nii"), "<")

# Broken files: one line on stderr, exit code 1 (a signal would be 128+ or negative).
def expect_error(name, path, want):
    r = subprocess.run([dump, path, P("err.raw")], capture_output=True, text=True)
    msg = r.stderr.strip()
    if r.returncode != 1 or "\n" in msg or want not in msg or path not in msg:
        failures.append(f"{name}: exit {r.returncode}, stderr {msg!r} (wanted one line with {want!r})")
    else:
        print(f"ok {name}: {msg}")

blob = open(P("i16_auto.nii.gz"), "rb").read()
open(P("cut_half.nii.gz"), "wb").write(blob[: len(blob) // 2])
expect_error("truncated .nii.gz (half)", P("cut_half.nii.gz"), "truncated")
open(P("cut_trailer.nii.gz"), "wb").write(blob[:-3])
expect_error("truncated .nii.gz (inside the gzip trailer)", P("cut_trailer.nii.gz"), "truncated")
plain = open(P("f4_be.nii"), "rb").read()
open(P("cut.nii"), "wb").write(plain[:-10])
expect_error("truncated .nii", P("cut.nii"), "truncated")
with open(P("text.nii"), "w") as f:
    f.write("patient notes, not an image\n" * 30)
expect_error("text file renamed .nii", P("text.nii"), "not a NIfTI")
expect_error("missing file", P("missing.nii.gz"), "not found")

if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
EOF

# The other direction: files we write (int16 + scl_slope images, uint8 labels) as nibabel reads them.
cat > "$TMP/write_check.cpp" <<'EOF'
#include <cstdio>
#include "unet/data/nifti.h"
#include "unet/data/synthetic_msd.h"
int main(int, char** argv) {
    unet::SyntheticSpec s;
    s.width = 40, s.height = 36, s.depth = 20, s.seed = 3;
    unet::Volume image, label;
    unet::synthesize_case(s, 0, image, label);
    const std::string dir = argv[1];
    unet::write_nifti(dir + "/img.nii.gz", image, unet::NiftiType::int16);
    unet::write_nifti(dir + "/lab.nii", label, unet::NiftiType::uint8);
    unet::write_nifti(dir + "/f32.nii.gz", image, unet::NiftiType::float32);
    std::FILE* f = std::fopen((dir + "/img.raw").c_str(), "wb");
    std::fwrite(image.data.data(), 4, image.data.size(), f);
    std::fclose(f);
    return 0;
}
EOF
g++ -std=c++17 -O1 -Iinclude -I/usr/include/nifti "$TMP/write_check.cpp" "$BUILD/libunet.a" -o "$TMP/write_check" \
    $(pkg-config --libs hdf5-serial) -lniftiio -lznz -lz -fopenmp -lpthread || fail "cannot build the write check"
"$TMP/write_check" "$TMP" || fail "write_check failed"
"$PY" - "$TMP" <<'EOF' || fail "nibabel disagrees with files written by write_nifti"
import sys
import numpy as np
import nibabel as nib
tmp = sys.argv[1]
src = np.fromfile(f"{tmp}/img.raw", dtype="<f4").reshape(4, 20, 36, 40)
img = nib.load(f"{tmp}/img.nii.gz")
assert img.shape == (40, 36, 20, 4), img.shape
assert img.get_data_dtype() == np.int16
slope = float(img.dataobj.slope)
assert slope > 0 and float(img.dataobj.inter) == 0.0
got = img.get_fdata().transpose(3, 2, 1, 0)
assert np.max(np.abs(got - src)) <= 0.5 * slope + 1e-3, np.max(np.abs(got - src))
assert np.array_equal(got == 0, src == 0)
assert np.allclose(img.affine, np.eye(4))
f32 = nib.load(f"{tmp}/f32.nii.gz").get_fdata().transpose(3, 2, 1, 0)
assert np.array_equal(f32.astype(np.float32), src)
lab = nib.load(f"{tmp}/lab.nii")
assert lab.get_data_dtype() == np.uint8 and lab.shape == (40, 36, 20)
assert set(np.unique(np.asarray(lab.dataobj))) <= {0, 1, 2, 3}
print(f"ok write_nifti -> nibabel: int16 slope {slope:.4g}, float32, uint8")
EOF
echo ok
