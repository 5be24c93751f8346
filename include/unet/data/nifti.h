// NIfTI-1/2 volumes (.nii and .nii.gz) through Debian's niftilib.
//
// Reading: any stored integer or float datatype (uint8, int8, (u)int16, (u)int32, (u)int64,
// float32, float64), either byte order, NIfTI-1 or NIfTI-2 (whose header we decode ourselves: the
// NIfTI-1 library cannot). scl_slope / scl_inter are applied (niftilib does not) when the slope is
// finite, non-zero and not (1, 0). NaN and Inf in float data are kept, as nibabel keeps them.
// NIfTI stores x fastest with dims (x, y, z, t); we return channels-first C x D x H x W with
// C = t (1 for 3D files), D = z, H = y, W = x, i.e. the same memory order with the 4th axis outermost.
// 2D files give D = 1. niftilib cross-checks every NIfTI-1 header; the data is read (and gunzipped)
// by us with every short read and gzip CRC / length error detected, because niftilib zero-fills a
// truncated .nii.gz silently and replaces NaN by 0.
//
// Writing (used by the synthetic dataset): .nii.gz (gzip level 1) or .nii by the file name, with
// the given datatype, identity affine (qform code 1), 1 mm voxels; written to "<path>.tmp" and
// renamed. uint8 rounds and rejects values outside 0..255. int16 stores integer data that fits
// exactly (no scaling) and anything else with scl_slope = max|v| / 32767 and scl_inter = 0, so
// zero (background) stays exactly zero and other values are within slope / 2. Integer types
// reject NaN / Inf.
//
// Results on a scan's own grid (unet_predict): read_nifti can hand back the header as stored, and
// write_nifti_like writes a one-channel volume with that header: the same bytes (affine, qform and
// sform with their codes, pixdim, units, descrip, intent), in the same byte order and NIfTI version,
// with only dim (3-D), datatype/bitpix, vox_offset, scl_slope/scl_inter (none) and cal_min/cal_max
// (0: let viewers scale) changed. Header extensions are not copied.
//
// Errors: std::runtime_error with one line naming the file and what was wrong (missing,
// truncated, not NIfTI, unsupported datatype, wrong dimensionality, write failure). niftilib's own
// messages on stderr are switched off.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "unet/data/volume.h"

namespace unet {

// The header of a NIfTI file as stored, for writing results on the same grid.
struct NiftiHeader {
    int version = 1;                   // 1 (348 bytes) or 2 (540 bytes)
    bool swap = false;                 // stored in the other byte order than this machine's
    std::vector<unsigned char> bytes;  // the header as stored
    int64_t dim[8] = {0};              // dim[0] = number of axes; x, y, z, t = dim[1..4]
    double pixdim[8] = {0};
    int xyzt_units = 0;
    // Voxel size along x, y, z (axis 0, 1, 2) in mm: |pixdim| scaled by the spatial unit
    // (metres, mm, microns; an unknown unit is taken as mm, as nibabel and ITK do); 1 when 0.
    double spacing_mm(int axis) const;
};

// Reads the header only (the data is not touched): the same checks as read_nifti's header part.
// A case's id from its file: "<dir>/BRATS_001.nii.gz" -> "BRATS_001" (.nii or .nii.gz dropped).
std::string nifti_case_id(const std::string& path);

NiftiHeader read_nifti_header(const std::string& path);
Volume read_nifti(const std::string& path, NiftiHeader* header = nullptr);

enum class NiftiType { uint8, int16, float32 };
// Writes C x D x H x W (C > 1 becomes the 4th NIfTI axis). Integer types: see above.
void write_nifti(const std::string& path, const Volume& v, NiftiType type);
// Writes a one-channel volume whose D x H x W equals like's z, y, x with like's header (see above).
// type: uint8 (rounded, 0..255) or float32. Written to "<path>.tmp" and renamed.
void write_nifti_like(const std::string& path, const NiftiHeader& like, const Volume& v, NiftiType type);

}  // namespace unet
