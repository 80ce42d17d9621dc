#!/usr/bin/env python
"""Merge protopipe 0.5.0 TRAINING or DL2 HDF5 files (run inside a job, on the worker node).

    python merge_tables.py -o OUT IN [IN ...]

TRAINING files have one table per camera type at the root (/LSTCam, /NectarCam, ...);
DL2 files have a single /reco_events table. The output holds the union of the table
names, each table being the concatenation, in input order, of the rows of the inputs
(plain read + append, which is much faster than append_where). Dtypes must be identical.

Root attributes: num_showers is summed over the merged inputs. shower_reuse must be the
same in every input. status and any other attribute are taken from the first merged input.

Inputs are skipped, with a line on stderr, when
  - they cannot be opened as HDF5 (unreadable, zero bytes, truncated),
  - they are incomplete protopipe outputs (a status attribute other than "complete"),
    which is what a crashed protopipe job leaves behind.
Files without protopipe's root attributes at all (plain tables) are merged as they are.
An input that is complete but has no rows contributes no rows, but its num_showers is
still counted (those showers were simulated); this is reported on stderr too.

The output is written to OUT.part and renamed to OUT at the end, so OUT either does not
exist or is complete. Exit status: 0 on success, 1 on error (nothing usable to merge,
dtype mismatch, different shower_reuse, I/O error), 2 on bad usage.
Needs only Python >= 3.6, numpy and PyTables.
"""
import argparse
import os
import sys
import warnings

import tables

CHUNK = 500000  # rows per read, bounds memory for big tables
PROG = "merge_tables"


class MergeError(Exception):
    pass


def note(msg):
    sys.stderr.write("%s: %s\n" % (PROG, msg))


def root_attrs(h5):
    attrs = h5.root._v_attrs
    return dict((k, attrs[k]) for k in attrs._f_list("user"))


def merge(out_path, in_paths, note=note):
    """Merge ``in_paths`` into ``out_path``; ``note`` receives skip and warning messages."""
    part = out_path + ".part"
    if os.path.abspath(out_path) in [os.path.abspath(p) for p in in_paths]:
        raise MergeError("output %s is also an input" % out_path)
    out = tables.open_file(part, mode="w")
    try:
        first_attrs = None  # root attributes of the first merged input
        first_file = None
        first_kind = None  # "DL2" (has /reco_events) or "TRAINING"
        num_showers = 0
        any_showers = False
        seen_dtype = {}  # table path -> (dtype, file that defined it)
        obs_ids = set()  # obs_ids of earlier inputs (for a warning)
        merged = 0
        for path in in_paths:
            try:
                h5 = tables.open_file(path, mode="r")
            except Exception as exc:  # HDF5ExtError, OSError, ValueError ...
                lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
                why = "empty file" if os.path.isfile(path) and os.path.getsize(path) == 0 else (
                    lines[-1] if lines else type(exc).__name__)
                note("skipping %s: unreadable (%s)" % (path, why))
                continue
            try:
                attrs = root_attrs(h5)
                if "status" in attrs and attrs["status"] != "complete":
                    note("skipping %s: not a complete protopipe output (status=%r)" % (path, attrs.get("status")))
                    continue
                if first_attrs is None:
                    first_attrs, first_file = attrs, path
                elif attrs.get("shower_reuse") != first_attrs.get("shower_reuse"):
                    raise MergeError(
                        "%s: shower_reuse=%r differs from %r in %s"
                        % (path, attrs.get("shower_reuse"), first_attrs.get("shower_reuse"), first_file)
                    )
                num_showers += int(attrs.get("num_showers", 0))
                any_showers = any_showers or "num_showers" in attrs
                merged += 1
                kind = "DL2" if "/reco_events" in h5 else "TRAINING"
                if first_kind is None:
                    first_kind = kind
                elif kind != first_kind:
                    raise MergeError("%s is a %s file, %s is a %s file" % (path, kind, first_file, first_kind))
                n_rows = 0
                these_obs_ids = set()
                for tab in h5.walk_nodes("/", "Table"):
                    where = tab._v_pathname
                    if where in seen_dtype:
                        dtype, origin = seen_dtype[where]
                        if tab.dtype != dtype:
                            raise MergeError("%s: table %s has a dtype different from the one in %s" % (path, where, origin))
                        dest = out.get_node(where)
                    else:
                        dest = out.create_table(
                            tab._v_parent._v_pathname, tab._v_name, description=tab.description,
                            title=tab.title, filters=tab.filters, createparents=True,
                        )
                        for k in tab.attrs._f_list("user"):
                            dest.attrs[k] = tab.attrs[k]
                        if dest.dtype != tab.dtype:  # should not happen; never write converted rows
                            raise MergeError("%s: cannot reproduce the dtype of table %s" % (path, where))
                        seen_dtype[where] = (tab.dtype, path)
                    for start in range(0, tab.nrows, CHUNK):
                        rows = tab.read(start, min(start + CHUNK, tab.nrows))
                        dest.append(rows)
                        if "obs_id" in tab.colnames:
                            these_obs_ids.update(rows["obs_id"].tolist())
                    n_rows += tab.nrows
                shared = these_obs_ids & obs_ids
                if shared:  # harmless for training, but DL3 counts runs by distinct obs_id
                    note("warning: %s shares %d obs_id(s) with earlier inputs (e.g. %d)" % (path, len(shared), min(shared)))
                obs_ids |= these_obs_ids
                if n_rows == 0:
                    note("%s has no rows: no rows merged, its num_showers=%d still counted" % (path, attrs.get("num_showers", 0)))
            finally:
                h5.close()
        if merged == 0:
            raise MergeError("no usable input among %d file(s)" % len(in_paths))
        for k, v in first_attrs.items():
            out.root._v_attrs[k] = v
        if any_showers:
            out.root._v_attrs["num_showers"] = num_showers
        out.close()
    except BaseException:
        out.close()
        if os.path.exists(part):
            os.remove(part)
        raise
    os.replace(part, out_path)
    return merged, num_showers


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", required=True, help="merged output file")
    parser.add_argument("inputs", nargs="+", help="protopipe TRAINING or DL2 files")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", tables.NaturalNameWarning)
    try:
        merged, num_showers = merge(args.output, args.inputs)
    except MergeError as exc:
        note("error: %s" % exc)
        return 1
    except (OSError, tables.exceptions.HDF5ExtError) as exc:
        note("error: %s" % exc)
        return 1
    note("merged %d of %d input(s) into %s (num_showers=%d)" % (merged, len(args.inputs), args.output, num_showers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
