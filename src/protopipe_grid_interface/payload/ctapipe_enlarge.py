#!/usr/bin/env python
"""Clone a real ctapipe DL1/DL2 file into a bigger stand-in sample. A DEMO AID, NOT PHYSICS.

    python ctapipe_enlarge.py SOURCE OUTPUT --particle {gamma,proton,electron} --events N
        --seed S --obs-id O [--energy-range LOW HIGH] [--spectral-index G]
        [--viewcone MIN MAX] [--jitter J] [--hadron-widening W]

The only real simulations available offline are a few sim_telarray test files with a handful
of gamma events and no protons or electrons: too few to train models or to build IRFs. This
script writes a file with exactly the layout ``ctapipe-process`` (or ``ctapipe-merge``) wrote
for SOURCE (same tables, dtypes, attributes, instrument and service tables), holding N events
cloned from the real ones. Models and IRFs built from it exercise the tools, nothing more:
their numbers have no physical meaning.

Each clone copies every row (subarray and telescope tables, simulation truth, DL1 parameters,
DL2 geometry) of one randomly chosen real event, with:

- one run: obs_id O (sb_id O), event_id 1..N;
- a true energy drawn from a power law of index G between LOW and HIGH (TeV), the image
  intensities scaled by the ratio of the new to the real energy (so that they track it);
- a multiplicative Gaussian jitter J on the image shape and intensity parameters and the
  reconstructed impact and height, so that clones of one event differ;
- with a viewcone (MAX > 0), a true direction uniform in solid angle between MIN and MAX
  degrees from the real one, the reconstructed direction moved with it;
- for protons, Hillas width and length widened by a factor uniform in 1..1+W, so that a
  classifier has something to learn (electrons keep the gamma shapes, as real ones nearly do),
  and the true primary id set (gamma 0, electron 1, proton 101).

The simulation configuration (one row for O) gets the energy range, spectral index and
viewcone of the draw. The number of thrown showers keeps the real file's ratio of triggered
events to thrown showers: n_showers x shower_reuse equals the shower-distribution histogram's
count, as ctapipe's optimisation and IRF tools check. Python 3, numpy and PyTables only.
"""
import argparse
import math
import shutil
import sys

import numpy as np
import tables

PROG = "ctapipe_enlarge"
NOT_PHYSICS = "stand-in sample cloned from real events; NOT PHYSICS"
PRIMARY_ID = {"gamma": 0, "electron": 1, "proton": 101}
#: (energy range TeV, viewcone deg) of each particle when not given
DEFAULTS = {"gamma": ((0.05, 10.0), (0.0, 0.0)),
            "electron": ((0.05, 10.0), (0.0, 6.0)),
            "proton": ((0.1, 20.0), (0.0, 6.0))}
TRIGGER = "/dl1/event/subarray/trigger"
SHOWER = "/simulation/event/subarray/shower"
RUN = "/configuration/simulation/run"
DISTRIBUTION = "/simulation/service/shower_distribution"
SHAPE_COLUMNS = ("hillas_length", "hillas_width")
JITTERED = ("hillas_length", "hillas_width", "hillas_skewness", "hillas_kurtosis", "hillas_r",
            "timing_slope", "timing_deviation", "concentration_cog", "concentration_core",
            "concentration_pixel", "peak_time_std", "peak_time_skewness", "peak_time_kurtosis",
            "intensity_skewness", "intensity_kurtosis")


class EnlargeError(Exception):
    pass


def energy_scaled(name):
    """Columns that are image intensities: they follow the shower energy."""
    bare = name[len("true_"):] if name.startswith("true_") else name
    if bare in ("hillas_intensity", "image_sum") or name.endswith("_average_intensity"):
        return True
    return bare.startswith("intensity_") and bare not in ("intensity_skewness",
                                                           "intensity_kurtosis")


def jittered(name):
    bare = name[len("true_"):] if name.startswith("true_") else name
    return (bare in JITTERED or energy_scaled(name) or name.endswith("_tel_impact_distance")
            or name.endswith("_h_max"))


def power_law(rng, n, low, high, index):
    """n energies from dN/dE ~ E**index between low and high."""
    u = rng.uniform(size=n)
    if abs(index + 1) < 1e-9:
        return low * (high / low) ** u
    a, b = low ** (index + 1), high ** (index + 1)
    return (a + u * (b - a)) ** (1.0 / (index + 1))


def offset_directions(rng, alt, az, rmin, rmax):
    """Directions uniform in solid angle between rmin and rmax degrees around (alt, az)."""
    n = len(alt)
    cos_theta = rng.uniform(math.cos(math.radians(rmax)), math.cos(math.radians(rmin)), n)
    theta = np.arccos(cos_theta)
    phi = rng.uniform(0, 2 * math.pi, n)
    lat1, lon1 = np.radians(alt), np.radians(az)
    lat2 = np.arcsin(np.sin(lat1) * np.cos(theta) + np.cos(lat1) * np.sin(theta) * np.cos(phi))
    lon2 = lon1 + np.arctan2(np.sin(phi) * np.sin(theta) * np.cos(lat1),
                             np.cos(theta) - np.sin(lat1) * np.sin(lat2))
    return np.degrees(lat2), np.degrees(lon2) % 360.0


class Clones(object):
    """What each clone is: its real event and what changes."""

    def __init__(self, source, args, rng):
        trigger = source.get_node(TRIGGER).read()
        shower = source.get_node(SHOWER).read()
        keys = list(zip(trigger["obs_id"].tolist(), trigger["event_id"].tolist()))
        if not keys:
            raise EnlargeError("%s: no events in %s" % (source.filename, TRIGGER))
        self.index = {key: k for k, key in enumerate(keys)}
        true_energy = np.full(len(keys), np.nan)
        true_alt, true_az = np.full(len(keys), np.nan), np.full(len(keys), np.nan)
        for row in shower:
            k = self.index.get((int(row["obs_id"]), int(row["event_id"])))
            if k is not None:
                true_energy[k], true_alt[k], true_az[k] = (row["true_energy"], row["true_alt"],
                                                           row["true_az"])
        if np.isnan(true_energy).any():
            raise EnlargeError("%s: events without simulated shower" % source.filename)
        n = args.events
        self.source_event = rng.integers(0, len(keys), n)
        self.energy = power_law(rng, n, args.energy_range[0], args.energy_range[1],
                                args.spectral_index)
        self.scale = self.energy / true_energy[self.source_event]
        src_alt, src_az = true_alt[self.source_event], true_az[self.source_event]
        if args.viewcone[1] > 0:
            self.alt, self.az = offset_directions(rng, src_alt, src_az, *args.viewcone)
        else:
            self.alt, self.az = src_alt, src_az
        self.src_alt, self.src_az = src_alt, src_az
        self.widening = np.ones(n)
        if args.particle == "proton":
            self.widening = rng.uniform(1.0, 1.0 + args.hadron_widening, n)
        self.triggered = len(keys)

    def rows(self, data):
        """Row indices of ``data`` for each clone in turn, and the clone of each output row."""
        event_of_row = np.array([self.index.get(key, -1) for key in
                                 zip(data["obs_id"].tolist(), data["event_id"].tolist())],
                                dtype=np.int64)
        order = np.argsort(event_of_row, kind="stable")
        sorted_events = event_of_row[order]
        n_events = len(self.index)
        starts = np.searchsorted(sorted_events, np.arange(n_events), side="left")
        stops = np.searchsorted(sorted_events, np.arange(n_events), side="right")
        pieces, clones = [], []
        for clone, k in enumerate(self.source_event):
            if stops[k] > starts[k]:
                pieces.append(order[starts[k]:stops[k]])
                clones.append(np.full(stops[k] - starts[k], clone))
        if not pieces:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(pieces), np.concatenate(clones)


def clone_events(data, clones, args, rng):
    """The rows of an event table for every clone, changed as the module docstring says."""
    rows, clone = clones.rows(data)
    out = data[rows].copy()
    names = out.dtype.names
    out["obs_id"] = args.obs_id
    out["event_id"] = clone + 1
    for name in names:
        kind = out.dtype[name]
        if kind.shape != () or kind.kind not in "fiu" or name in ("obs_id", "event_id",
                                                                  "tel_id"):
            continue
        factor = None
        if energy_scaled(name):
            factor = clones.scale[clone]
        if name.replace("true_", "", 1) in SHAPE_COLUMNS:
            factor = clones.widening[clone] if factor is None else factor * clones.widening[clone]
        if args.jitter > 0 and jittered(name):
            noise = np.clip(rng.normal(1.0, args.jitter, len(out)), 0.5, 1.5)
            factor = noise if factor is None else factor * noise
        if factor is not None:
            values = out[name] * factor
            out[name] = np.rint(values) if kind.kind in "iu" else values
    if "true_energy" in names:
        out["true_energy"] = clones.energy[clone]
    if "true_shower_primary_id" in names:
        out["true_shower_primary_id"] = PRIMARY_ID[args.particle]
    if "true_alt" in names:
        out["true_alt"], out["true_az"] = clones.alt[clone], clones.az[clone]
    for name in names:  # reconstructed directions keep their error, moved with the truth
        if name.endswith("_alt") and not name.startswith("true") and name[:-4] + "_az" in names:
            az = name[:-4] + "_az"
            d_alt = out[name] - clones.src_alt[clone]
            d_az = (out[az] - clones.src_az[clone] + 180.0) % 360.0 - 180.0
            out[name] = clones.alt[clone] + d_alt
            ratio = np.cos(np.radians(clones.src_alt[clone])) / np.cos(np.radians(out[name]))
            out[az] = (clones.az[clone] + d_az * ratio) % 360.0
    return out


def one_run(data, args, key):
    """The first run's rows of a per-run table, given run number O."""
    first = data[key][0]
    out = data[data[key] == first].copy()
    out[key] = args.obs_id
    if key == "obs_id" and "sb_id" in out.dtype.names:
        out["sb_id"] = args.obs_id
    return out


def simulation_run(data, args, thrown):
    out = one_run(data, args, "obs_id")
    reuse = int(out["shower_reuse"][0]) or 1
    out["n_showers"] = thrown // reuse
    out["energy_range_min"], out["energy_range_max"] = args.energy_range
    out["spectral_index"] = args.spectral_index
    out["min_viewcone_radius"], out["max_viewcone_radius"] = args.viewcone
    out["diffuse"] = int(args.viewcone[1] > 0)
    return out


def shower_distribution(data, args, thrown):
    """One histogram of ``thrown`` showers: the power law in energy, the real core spread."""
    out = one_run(data, args, "obs_id")
    edges = out["bins_energy"][0]
    low, high = args.energy_range
    g = args.spectral_index + 1
    lo, hi = np.clip(edges[:-1], low, high), np.clip(edges[1:], low, high)
    weights = np.log(hi / lo) if abs(g) < 1e-9 else (hi ** g - lo ** g) / g
    weights = weights / weights.sum()
    core = data["histogram"].sum(axis=(0, 1))
    core = core / core.sum() if core.sum() > 0 else np.full(core.shape, 1.0 / core.size)
    out["histogram"] = (thrown * np.outer(weights, core)).astype(out["histogram"].dtype)
    out["n_entries"] = thrown
    return out


def thrown_showers(source, events):
    """Showers to throw for ``events`` triggered ones, as a multiple of shower_reuse, keeping
    the real ratio of thrown showers to triggered events."""
    run = source.get_node(RUN).read()
    real_thrown = int((run["n_showers"] * run["shower_reuse"]).sum())
    triggered = source.get_node(TRIGGER).nrows
    reuse = int(run["shower_reuse"][0]) or 1
    wanted = int(round(events * real_thrown / float(triggered)))
    return max(reuse, int(math.ceil(wanted / float(reuse))) * reuse)


def enlarge(args):
    rng = np.random.default_rng(args.seed)
    shutil.copyfile(args.source, args.output)
    with tables.open_file(args.source) as source, tables.open_file(args.output, "a") as output:
        clones = Clones(source, args, rng)
        thrown = thrown_showers(source, args.events)
        for table in list(output.walk_nodes("/", "Table")):
            path = table._v_pathname
            names = table.colnames
            data = source.get_node(path).read()
            if path == RUN:
                new = simulation_run(data, args, thrown)
            elif path == DISTRIBUTION:
                new = shower_distribution(data, args, thrown)
            elif "obs_id" in names and "event_id" in names:
                new = clone_events(data, clones, args, rng)
            elif "obs_id" in names:
                new = one_run(data, args, "obs_id")
            elif "sb_id" in names and path.startswith("/configuration/observation"):
                new = one_run(data, args, "sb_id")
            else:
                continue
            table.truncate(0)
            if len(new):
                table.append(new)
            table.flush()
        output.root._v_attrs["PGI_STAND_IN"] = "%s: %s %d events (seed %d) from %s" % (
            NOT_PHYSICS, args.particle, args.events, args.seed, args.source)
    return clones, thrown


def parse(argv):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("--particle", choices=sorted(PRIMARY_ID), required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--obs-id", type=int, required=True)
    parser.add_argument("--energy-range", type=float, nargs=2, metavar=("LOW", "HIGH"))
    parser.add_argument("--spectral-index", type=float, default=-1.5)
    parser.add_argument("--viewcone", type=float, nargs=2, metavar=("MIN", "MAX"))
    parser.add_argument("--jitter", type=float, default=0.05)
    parser.add_argument("--hadron-widening", type=float, default=0.8)
    args = parser.parse_args(argv)
    energy, viewcone = DEFAULTS[args.particle]
    args.energy_range = tuple(args.energy_range or energy)
    args.viewcone = tuple(args.viewcone or viewcone)
    if args.events < 1 or args.obs_id < 1:
        parser.error("--events and --obs-id must be positive")
    if not 0 < args.energy_range[0] < args.energy_range[1]:
        parser.error("--energy-range: need 0 < LOW < HIGH")
    if not 0 <= args.viewcone[0] <= args.viewcone[1] < 90:
        parser.error("--viewcone: need 0 <= MIN <= MAX < 90")
    return args


def main(argv):
    args = parse(argv)
    print("%s: %s" % (PROG, NOT_PHYSICS), flush=True)
    try:
        clones, thrown = enlarge(args)
    except (EnlargeError, OSError, tables.HDF5ExtError, KeyError, ValueError) as exc:
        sys.stderr.write("%s: %s\n" % (PROG, exc))
        return 1
    print("%s: %s: %d %s events (obs_id %d) cloned from %d real ones, %d showers thrown, "
          "energy %g-%g TeV (index %g), viewcone %g-%g deg"
          % (PROG, args.output, args.events, args.particle, args.obs_id, clones.triggered,
             thrown, args.energy_range[0], args.energy_range[1], args.spectral_index,
             args.viewcone[0], args.viewcone[1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
