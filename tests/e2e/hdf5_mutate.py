#!/usr/bin/python3
"""Seeded random damage to an HDF5 file, for tests/e2e/hdf5_bitflips.sh.

  hdf5_mutate.py SRC OUT_DIR COUNT SEED     -> OUT_DIR/m000.h5 ... and one line per copy on stdout:
                                               "m000.h5 <kind> at <offset> (<region>)"
  hdf5_mutate.py --raw SRC DATASET          -> prints the file offset of the middle byte of
                                               DATASET's stored data (its middle chunk)

Each copy gets one mutation: a bit flip, a random byte, or a run of 2-8 random bytes. Half of them
land on the file's metadata (every byte outside the datasets' stored data: superblock, object
headers, B-trees, heaps), where HDF5 itself is weakest; the other half anywhere. The regions come
from h5py when it is installed; without it every position is uniform over the file.
"""
import os
import random
import sys


def data_ranges(path):
    """[(start, end)] of every dataset's stored bytes (chunks or contiguous block), or [] without h5py."""
    try:
        import h5py
    except ImportError:
        return []
    ranges = []

    def visit(_name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        dsid = obj.id
        if obj.chunks is None:
            off = dsid.get_offset()
            if off is not None:
                ranges.append((off, off + dsid.get_storage_size()))
            return
        for i in range(dsid.get_num_chunks()):
            info = dsid.get_chunk_info(i)
            ranges.append((info.byte_offset, info.byte_offset + info.size))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return sorted(ranges)


def middle_of(path, dataset):
    import h5py
    with h5py.File(path, "r") as f:
        dsid = f[dataset].id
        if f[dataset].chunks is None:
            return dsid.get_offset() + dsid.get_storage_size() // 2
        info = dsid.get_chunk_info(dsid.get_num_chunks() // 2)
        return info.byte_offset + info.size // 2


def main():
    if sys.argv[1] == "--raw":
        print(middle_of(sys.argv[2], sys.argv[3]))
        return
    src, out, count, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    data = open(src, "rb").read()
    size = len(data)
    ranges = data_ranges(src)
    in_data = bytearray(size)
    for a, b in ranges:
        in_data[a:min(b, size)] = b"\1" * (min(b, size) - a)
    meta = [i for i in range(size) if not in_data[i]] if ranges else []
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    for k in range(count):
        buf = bytearray(data)
        pos = rng.choice(meta) if meta and k % 2 == 0 else rng.randrange(size)
        r = rng.random()
        if r < 0.5:
            bit = rng.randrange(8)
            buf[pos] ^= 1 << bit
            kind = f"bit {bit} flipped"
        elif r < 0.75:
            old = buf[pos]
            buf[pos] = rng.choice([v for v in range(256) if v != old])
            kind = f"byte {old:#04x} -> {buf[pos]:#04x}"
        else:
            n = min(rng.randint(2, 8), size - pos)
            for i in range(n):
                buf[pos + i] = rng.randrange(256)
            kind = f"{n} random bytes"
        name = f"m{k:03d}.h5"
        open(os.path.join(out, name), "wb").write(buf)
        region = "data" if in_data[pos] else ("metadata" if ranges else "unknown")
        print(f"{name} {kind} at {pos} ({region})")


if __name__ == "__main__":
    main()
