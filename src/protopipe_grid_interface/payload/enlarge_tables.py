#!/usr/bin/env python
"""Enlarge thin protopipe 0.5.0 tables for a demo. A DEMO AID, NOT PHYSICS.

    python enlarge_tables.py -o OUT [--n N] [--seed S] [--as-background] IN [IN ...]

The only real simulations available offline are a few sim_telarray test files with a
handful of gamma events, which is too little to train a model or build IRFs. This
script makes a bigger file with exactly the same layout as the real protopipe output
(same tables, same dtypes, same root attributes) by resampling the real rows. The
result has no physical meaning: the models and IRFs built from it are meaningless.
Use it only to exercise the workflow.

Input: protopipe TRAINING files (one table per camera type at the root, e.g. /LSTCam,
/NectarCam) or DL2 files (/reco_events). Several inputs are concatenated first (same
table names must have the same dtype). Every table of the output gets N rows, each a
copy of a random real row of that table with:
  - fresh event ids: event_id = 1, 2, ... unique over the whole output file (rows of
    different tables are NOT images of the same event any more);
  - obs_id kept from the source row, or, with --n-runs K, spread over the K run numbers
    --first-obs-id .. --first-obs-id+K-1 (obs_id is int16 in protopipe: must fit);
  - a small multiplicative Gaussian jitter (--jitter, default 3%) on continuous columns,
    a --angle-jitter on the reconstructed direction; the true and pointing directions
    are not jittered (gammas stay point-like); xi, offset, hillas_r/phi and
    hillas_ellipticity are recomputed so they stay consistent;
  - a per-row energy scale 10**U(-s, s) (--energy-spread s decades) applied together to
    the true and reconstructed energies and to the image intensities, so that intensity
    keeps tracking energy; with --energy-range LOW HIGH (TeV, tables with true_energy) the
    scale instead takes each row's true energy to a log-uniform draw in LOW..HIGH (the
    reconstructed energy keeps its ratio to the true one). Log-uniform is not the simulated
    power law: another way in which the result is not physics.
With --as-background the rows become a crude, distinguishable hadron stand-in: hillas
width and length are widened, gammaness (DL2) is scaled down by a Beta(1.2, 3) factor
(the real input only has gammas, so the classifier calls everything a gamma), except for
a --gamma-like-fraction of the rows (default 5%) that keep their gamma-like shape and
gammaness; the true direction is made diffuse (uniform within --diffuse-radius of the
pointing, the reconstructed direction moved along with it); true shower primary id
columns, if present (not in protopipe 0.5.0 tables), are set to --primary-id.

Root attributes are copied from the first input (shower_reuse must agree). num_showers
is the inputs' sum scaled by N / (largest input table), so rows per simulated shower
stay as in the input, unless --num-showers sets it. protopipe-DL3-EventDisplay does not
read num_showers from the file (it uses distinct obs_id count x num_use x num_showers from
its config): protopipe-grid-interface derives that config from these attributes.
Python >= 3.6, numpy and PyTables only.
"""
import argparse
import os
import sys
import warnings

import numpy as np
import tables

PROG = "enlarge_tables"
RECO_DIRS = [("alt", "az"), ("reco_alt", "reco_az")]
TRUE_DIR = ("true_alt", "true_az")
POINTING = ("pointing_alt", "pointing_az")
ENERGY_SCALED = {"true_energy", "reco_energy", "reco_energy_tel",
                 "hillas_intensity", "hillas_intensity_reco", "max_signal_cam"}
NOT_JITTERED = {"pointing_alt", "pointing_az", "true_alt", "true_az",
                "alt", "az", "reco_alt", "reco_az", "xi", "offset",
                "n_tel_reco", "n_tel_discri"}  # telescope counts stored as floats
ADDITIVE_DEG = {"hillas_psi", "hillas_psi_reco"}  # angles: additive jitter in degrees
FRACTIONS = {"gammaness", "leakage_intensity_width_1", "leakage_intensity_width_2",
             "leakage_intensity_width_1_reco", "leakage_intensity_width_2_reco",
             "concentration_cog", "concentration_core", "concentration_pixel"}
PRIMARY_ID = ("true_shower_primary_id", "shower_primary_id", "mc_shower_primary_id")


class EnlargeError(Exception):
    pass


def sep_deg(alt1, az1, alt2, az2):
    """Angular separation in degrees (all in degrees)."""
    a1, z1, a2, z2 = (np.radians(x) for x in (alt1, az1, alt2, az2))
    c = np.sin(a1) * np.sin(a2) + np.cos(a1) * np.cos(a2) * np.cos(z1 - z2)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def bearing_deg(alt1, az1, alt2, az2):
    a1, z1, a2, z2 = (np.radians(x) for x in (alt1, az1, alt2, az2))
    y = np.sin(z2 - z1) * np.cos(a2)
    x = np.cos(a1) * np.sin(a2) - np.sin(a1) * np.cos(a2) * np.cos(z2 - z1)
    return np.degrees(np.arctan2(y, x))


def move_deg(alt, az, dist, bearing):
    """Point at angular distance dist (deg) along bearing (deg) from (alt, az)."""
    a, z, d, b = (np.radians(x) for x in (alt, az, dist, bearing))
    a2 = np.arcsin(np.clip(np.sin(a) * np.cos(d) + np.cos(a) * np.sin(d) * np.cos(b), -1, 1))
    z2 = z + np.arctan2(np.sin(b) * np.sin(d) * np.cos(a), np.cos(d) - np.sin(a) * np.sin(a2))
    return np.degrees(a2), np.degrees(z2)


def read_inputs(paths):
    """Concatenate the tables of all inputs; return (tables, attrs, n_showers_in)."""
    data, dtypes, attrs, num_showers, kinds = {}, {}, None, 0, {}
    for path in paths:
        with tables.open_file(path, mode="r") as h5:
            kinds.setdefault("DL2" if "/reco_events" in h5 else "TRAINING", path)
            if len(kinds) > 1:
                raise EnlargeError("cannot mix DL2 and TRAINING files (%s, %s)" % tuple(kinds.values()))
            a = dict((k, h5.root._v_attrs[k]) for k in h5.root._v_attrs._f_list("user"))
            if attrs is None:
                attrs = a
            elif a.get("shower_reuse") != attrs.get("shower_reuse"):
                raise EnlargeError("%s: shower_reuse=%r differs from the first input's %r"
                                   % (path, a.get("shower_reuse"), attrs.get("shower_reuse")))
            num_showers += int(a.get("num_showers", 0))
            for tab in h5.walk_nodes("/", "Table"):
                where = tab._v_pathname
                if where in dtypes and dtypes[where][0] != tab.dtype:
                    raise EnlargeError("%s: table %s has a dtype different from the one in %s"
                                       % (path, where, dtypes[where][1]))
                dtypes.setdefault(where, (tab.dtype, path, tab.description, tab.title, tab.filters))
                data.setdefault(where, []).append(tab.read())
    if attrs is None:
        raise EnlargeError("no input")
    return dict((w, np.concatenate(parts)) for w, parts in data.items()), dtypes, attrs, num_showers


def enlarge_table(src, n, rng, args, next_event_id):
    names = src.dtype.names
    out = src[rng.integers(0, len(src), n)].copy()
    col = {}  # float64 working copies of the float columns
    for name in names:
        if out.dtype[name].kind == "f" and out.dtype[name].shape == ():
            col[name] = out[name].astype(np.float64)

    # energy scale, shared by energies and intensities of the row
    if args.energy_range:
        if "true_energy" not in col:
            raise EnlargeError("--energy-range needs a true_energy column")
        low, high = np.log10(args.energy_range)
        scale = 10.0 ** rng.uniform(low, high, n) / col["true_energy"]
    else:
        scale = 10.0 ** rng.uniform(-args.energy_spread, args.energy_spread, n)
    for name in ENERGY_SCALED & set(col):
        col[name] = col[name] * scale

    # small jitter on the other continuous columns
    for name in [c for c in names if c in col and c not in NOT_JITTERED]:  # fixed order: reproducible
        if name in ADDITIVE_DEG:
            col[name] = col[name] + rng.normal(0.0, 100 * args.jitter, n)
        else:
            col[name] = col[name] * (1.0 + rng.normal(0.0, args.jitter, n))

    if args.as_background:
        # a fraction of the rows stays gamma-like (shape, gammaness), as real hadrons sometimes do
        hadron_like = rng.uniform(0.0, 1.0, n) >= args.gamma_like_fraction
        for pre in ("hillas_width", "hillas_length"):
            widen = rng.uniform(1.5, 2.5, n) if pre == "hillas_width" else rng.uniform(1.2, 1.8, n)
            widen = np.where(hadron_like, widen, 1.0)
            for name in (pre, pre + "_reco"):
                if name in col:
                    col[name] = col[name] * widen
        if "gammaness" in col:
            col["gammaness"] = col["gammaness"] * np.where(hadron_like, rng.beta(1.2, 3.0, n), 1.0)
        for name in PRIMARY_ID:
            if name in names:
                out[name] = args.primary_id

    # reconstructed direction: small jitter, and for background follow a diffuse true direction
    have_true = all(c in col for c in TRUE_DIR) and all(c in col for c in POINTING)
    for alt, az in RECO_DIRS:
        if alt not in col or az not in col:
            continue
        d, b = np.abs(rng.normal(0.0, args.angle_jitter, n)), rng.uniform(-180, 180, n)
        if args.as_background and have_true:
            # offset of the reco direction from the true one, applied to the new true one
            d0 = sep_deg(col[TRUE_DIR[0]], col[TRUE_DIR[1]], col[alt], col[az])
            b0 = bearing_deg(col[TRUE_DIR[0]], col[TRUE_DIR[1]], col[alt], col[az])
            col[alt], col[az] = d0, b0  # stash, resolved below once the true direction moved
        else:
            col[alt], col[az] = move_deg(col[alt], col[az], d, b)
    if args.as_background and have_true:
        r = np.degrees(np.arccos(rng.uniform(np.cos(np.radians(args.diffuse_radius)), 1.0, n)))
        pa, pz = col[POINTING[0]], col[POINTING[1]]
        ta, tz = move_deg(pa, pz, r, rng.uniform(-180, 180, n))
        col[TRUE_DIR[0]], col[TRUE_DIR[1]] = ta, tz
        for alt, az in RECO_DIRS:
            if alt in col and az in col:
                d0, b0 = col[alt], col[az]
                d = d0 + np.abs(rng.normal(0.0, args.angle_jitter, n))
                col[alt], col[az] = move_deg(ta, tz, d, b0)

    # keep derived columns consistent
    for sfx in ("", "_reco"):
        x, y = "hillas_x" + sfx, "hillas_y" + sfx
        if x in col and y in col:
            if "hillas_r" + sfx in col:
                col["hillas_r" + sfx] = np.hypot(col[x], col[y])
            if "hillas_phi" + sfx in col:
                col["hillas_phi" + sfx] = np.degrees(np.arctan2(col[y], col[x]))
        w, l = "hillas_width" + sfx, "hillas_length" + sfx
        if w in col and l in col:  # width <= length by definition
            col[w], col[l] = np.fmin(col[w], col[l]), np.fmax(col[w], col[l])
        if "hillas_ellipticity" + sfx in col and w in col and l in col:
            col["hillas_ellipticity" + sfx] = col[w] / col[l]
    for alt, az in RECO_DIRS:
        if alt in col and az in col:
            if "xi" in col and all(c in col for c in TRUE_DIR):
                col["xi"] = sep_deg(col[TRUE_DIR[0]], col[TRUE_DIR[1]], col[alt], col[az])
            if "offset" in col and all(c in col for c in POINTING):
                col["offset"] = sep_deg(col[POINTING[0]], col[POINTING[1]], col[alt], col[az])
    for name in FRACTIONS & set(col):
        col[name] = np.clip(col[name], 0.0, 1.0)

    for name, values in col.items():
        out[name] = values
    if "event_id" in names:
        out["event_id"] = np.arange(next_event_id, next_event_id + n)
    if "obs_id" in names and args.n_runs:
        out["obs_id"] = args.first_obs_id + np.arange(n) % args.n_runs
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", required=True, help="output HDF5 file")
    p.add_argument("inputs", nargs="+", help="protopipe TRAINING or DL2 file(s)")
    p.add_argument("--n", type=int, default=1000, help="rows per output table (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--as-background", action="store_true", help="make a hadron-like stand-in")
    p.add_argument("--jitter", type=float, default=0.03, help="relative jitter (default 0.03)")
    p.add_argument("--angle-jitter", type=float, default=0.05,
                   help="reco direction jitter in deg (default 0.05)")
    p.add_argument("--energy-spread", type=float, default=0.5,
                   help="energy scale 10**U(-s,s), s in decades (default 0.5; 0 = off)")
    p.add_argument("--energy-range", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                   help="instead: true energies log-uniform in LOW..HIGH TeV (the row's scale is "
                        "new true energy / its true energy)")
    p.add_argument("--diffuse-radius", type=float, default=10.0,
                   help="--as-background: true directions within this radius in deg (default 10)")
    p.add_argument("--gamma-like-fraction", type=float, default=0.05,
                   help="--as-background: fraction of rows left gamma-like (default 0.05)")
    p.add_argument("--primary-id", type=int, default=101,
                   help="--as-background: value for true shower primary id columns (default 101)")
    p.add_argument("--n-runs", type=int, default=0,
                   help="spread rows over this many obs_ids (default 0: keep the source obs_id)")
    p.add_argument("--first-obs-id", type=int, default=1, help="first obs_id with --n-runs (default 1)")
    p.add_argument("--num-showers", type=int, default=None,
                   help="set the num_showers root attribute (default: scaled with the row count)")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error("--n must be >= 1")
    if args.energy_range and not 0 < args.energy_range[0] < args.energy_range[1]:
        p.error("--energy-range: expected 0 < LOW < HIGH (TeV)")
    warnings.simplefilter("ignore", tables.NaturalNameWarning)
    part = args.output + ".part"
    try:
        data, dtypes, attrs, num_showers_in = read_inputs(args.inputs)
        if args.n_runs:
            for where, arr in data.items():
                if "obs_id" in arr.dtype.names:
                    info = np.iinfo(arr.dtype["obs_id"])
                    if args.first_obs_id < info.min or args.first_obs_id + args.n_runs - 1 > info.max:
                        raise EnlargeError("obs_ids %d..%d do not fit in %s"
                                           % (args.first_obs_id, args.first_obs_id + args.n_runs - 1,
                                              arr.dtype["obs_id"]))
        rng = np.random.default_rng(args.seed)
        n_in = max(len(a) for a in data.values()) if data else 0
        next_event_id = 1
        with tables.open_file(part, mode="w") as out:
            for where in sorted(data):
                dtype, _, description, title, filters = dtypes[where]
                parent, name = where.rsplit("/", 1)
                dest = out.create_table(parent or "/", name, description=description, title=title,
                                        filters=filters, createparents=True, expectedrows=args.n)
                if len(data[where]) == 0:
                    sys.stderr.write("%s: %s has no rows in the input, left empty\n" % (PROG, where))
                    continue
                dest.append(enlarge_table(data[where], args.n, rng, args, next_event_id))
                next_event_id += args.n
            for k, v in attrs.items():
                out.root._v_attrs[k] = v
            if args.num_showers is not None:
                num_showers = args.num_showers
            else:
                num_showers = int(round(num_showers_in * args.n / max(n_in, 1)))
            out.root._v_attrs["num_showers"] = num_showers
        os.replace(part, args.output)
    except (EnlargeError, OSError, tables.exceptions.HDF5ExtError) as exc:
        if os.path.exists(part):
            os.remove(part)
        sys.stderr.write("%s: error: %s\n" % (PROG, exc))
        return 1
    sys.stderr.write("%s: wrote %s: %d table(s) x %d rows, num_showers=%d%s\n"
                     % (PROG, args.output, len(data), args.n, num_showers,
                        " (background stand-in)" if args.as_background else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
