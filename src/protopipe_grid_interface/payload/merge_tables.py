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

Needs only Python >= 3.6, numpy and PyTables. With h5py, inputs are read through h5py's
low-level API (opening a PyTables Table node costs 20-50 ms, most of a small file's merge);
the output is always written by PyTables. An input the h5py path cannot read exactly as
PyTables would (the first merged input, whose attributes are all copied; a table not yet
in the output; another type; soft links, groups, odd attributes, a filter h5py lacks ...)
is read with PyTables, so the output is the same with or without h5py.
"""
import argparse
import os
import sys
import warnings

import numpy
import tables

try:  # h5py reads the inputs without building PyTables nodes (20-50 ms per file)
    import h5py
    from h5py import h5a, h5d, h5f, h5g, h5l, h5p, h5s, h5t
except Exception:  # absent, or broken against this numpy: PyTables does it all
    h5py = None
try:  # read_direct_chunk(out=...) came with h5py 3.9
    DIRECT_CHUNKS = tuple(int(x) for x in h5py.__version__.split(".")[:2]) >= (3, 9)
except Exception:
    DIRECT_CHUNKS = False

CHUNK = 500000  # rows per read on the PyTables path, bounds memory for big tables
STAGE_BYTES = 8 << 20  # rows gathered per output table before one append
PROG = "merge_tables"
ENGINES = ("h5py", "tables")
FAST_ATTRS = (b"num_showers", b"shower_reuse", b"status")  # what later inputs contribute


class MergeError(Exception):
    pass


def plain(value):
    """A value as people read it: numpy scalars as plain numbers, text without quotes."""
    if hasattr(value, "item") and getattr(value, "size", 1) == 1:
        value = value.item()
    return value.decode() if isinstance(value, bytes) else value


def note(msg):
    sys.stderr.write("%s: %s\n" % (PROG, msg))


def root_attrs(h5):
    attrs = h5.root._v_attrs
    return dict((k, attrs[k]) for k in attrs._f_list("user"))


class Output(object):
    """One output table: its PyTables node, the h5py type inputs are read with, staged rows.

    Rows are gathered in ``buf`` (the output table's dtype) and appended STAGE_BYTES at a
    time; every input, whichever way it is read, goes through here, so rows keep input order.
    """

    def __init__(self, table, origin):
        self.table = table
        self.dtype = table.dtype
        self.origin = origin  # the input that defined the table (named in dtype errors)
        self.enc = None  # the HDF5 type (serialized) of inputs whose rows are bytes of dtype
        self.capacity = max(1, STAGE_BYTES // max(1, self.dtype.itemsize))
        self.buf = None
        self.pos = 0

    def reserve(self, n):
        """A view of the next ``n`` staged rows (n <= capacity), flushing earlier rows first."""
        if self.buf is None:
            self.buf = numpy.empty(self.capacity, self.dtype)
        if self.pos + n > self.capacity:
            self.flush()
        return self.buf[self.pos:self.pos + n]

    def add(self, rows):
        if len(rows) > self.capacity // 2:
            self.flush()
            self.table.append(rows)
        else:
            self.reserve(len(rows))[...] = rows
            self.pos += len(rows)

    def flush(self):
        if self.pos:
            self.table.append(self.buf[:self.pos])
            self.pos = 0


class Merge(object):
    """What the inputs merged so far add up to, and the output file being written."""

    def __init__(self, out, n_inputs, note):
        self.out = out
        self.n_inputs = n_inputs
        self.note = note
        self.first_attrs = None  # root attributes of the first merged input
        self.first_file = None
        self.first_kind = None  # "DL2" (has /reco_events) or "TRAINING"
        self.num_showers = 0
        self.any_showers = False
        self.outputs = {}  # table path -> Output
        self.obs_ids = set()  # obs_ids of earlier inputs (for a warning)
        self.merged = 0

    def account(self, path, attrs, kind):
        """Check one complete input's root attributes and kind against the earlier ones."""
        if self.first_attrs is None:
            self.first_attrs, self.first_file = attrs, path
        elif attrs.get("shower_reuse") != self.first_attrs.get("shower_reuse"):
            raise MergeError(
                "%s: each shower is reused %s times, %s times in %s: files of different "
                "simulations (merge them separately)"
                % (path, plain(attrs.get("shower_reuse")),
                   plain(self.first_attrs.get("shower_reuse")), self.first_file)
            )
        self.num_showers += int(attrs.get("num_showers", 0))
        self.any_showers = self.any_showers or "num_showers" in attrs
        self.merged += 1
        if self.first_kind is None:
            self.first_kind = kind
        elif kind != self.first_kind:
            raise MergeError("%s is a %s file, %s is a %s file" % (path, kind, self.first_file, self.first_kind))

    def take(self, path, attrs, kind, staged):
        """Account for one input read with h5py whose rows are staged: [(output, rows)]."""
        self.account(path, attrs, kind)
        n_rows = 0
        these_obs_ids = set()
        for output, n in staged:
            if n and "obs_id" in output.dtype.names:
                these_obs_ids.update(distinct(output.buf["obs_id"][output.pos:output.pos + n]))
            output.pos += n
            n_rows += n
        self.merged_rows(path, attrs, n_rows, these_obs_ids)

    def merged_rows(self, path, attrs, n_rows, these_obs_ids):
        shared = these_obs_ids & self.obs_ids
        if shared:  # harmless for training, but DL3 counts runs by distinct obs_id
            self.note("warning: %s shares %d obs_id(s) with earlier inputs (e.g. %d)" % (path, len(shared), min(shared)))
        self.obs_ids |= these_obs_ids
        if n_rows == 0:
            self.note("%s has no rows: no rows merged, its num_showers=%d still counted" % (path, attrs.get("num_showers", 0)))

    def create(self, tab, path):
        """The output table for input table ``tab`` (first seen in ``path``)."""
        dest = self.out.create_table(
            tab._v_parent._v_pathname, tab._v_name, description=tab.description,
            title=tab.title, filters=tab.filters, createparents=True,
            expectedrows=max(1, tab.nrows) * self.n_inputs,  # bigger chunks than the default
        )
        for k in tab.attrs._f_list("user"):
            dest.attrs[k] = tab.attrs[k]
        if dest.dtype != tab.dtype:  # should not happen; never write converted rows
            raise MergeError("%s: cannot reproduce the dtype of table %s" % (path, tab._v_pathname))
        output = self.outputs[tab._v_pathname] = Output(dest, path)
        return output

    def finish(self):
        for output in self.outputs.values():
            output.flush()
        for k, v in self.first_attrs.items():
            self.out.root._v_attrs[k] = v
        if self.any_showers:
            self.out.root._v_attrs["num_showers"] = self.num_showers


# --- reading an input with PyTables (any file PyTables can read) ---------------------------------
def merge_with_tables(path, m):
    """Merge one input, reading it with PyTables."""
    try:
        h5 = tables.open_file(path, mode="r")
    except Exception as exc:  # HDF5ExtError, OSError, ValueError ...
        lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
        why = "empty file" if os.path.isfile(path) and os.path.getsize(path) == 0 else (
            lines[-1] if lines else type(exc).__name__)
        m.note("skipping %s: unreadable (%s)" % (path, why))
        return
    try:
        attrs = root_attrs(h5)
        if "status" in attrs and attrs["status"] != "complete":
            m.note("skipping %s: not a complete protopipe output (status=%r)" % (path, attrs.get("status")))
            return
        m.account(path, attrs, "DL2" if "/reco_events" in h5 else "TRAINING")
        n_rows = 0
        these_obs_ids = set()
        for tab in h5.walk_nodes("/", "Table"):
            where = tab._v_pathname
            output = m.outputs.get(where)
            if output is None:
                output = m.create(tab, path)
            elif tab.dtype != output.dtype:
                raise MergeError("%s: table %s has a dtype different from the one in %s" % (path, where, output.origin))
            for start in range(0, tab.nrows, CHUNK):
                rows = tab.read(start, min(start + CHUNK, tab.nrows))
                output.add(rows)
                if "obs_id" in tab.colnames:
                    these_obs_ids.update(distinct(rows["obs_id"]))
            n_rows += tab.nrows
        m.merged_rows(path, attrs, n_rows, these_obs_ids)
    finally:
        h5.close()


# --- reading an input with h5py's low-level API (protopipe's files: tables at the root) ----------
class Fallback(Exception):
    """This input is not one the h5py path reads exactly as PyTables would: PyTables reads it."""


class InputTable(object):
    """One table of an input, as h5py sees it (not yet checked against the output)."""

    __slots__ = ("where", "did", "enc", "n", "rowsize", "chunk")

    def __init__(self, where, did, tid, n, chunk):
        self.where = where
        self.did = did
        self.enc = tid.encode()  # the HDF5 type, serialized: compared with the output's
        self.n = n
        self.rowsize = tid.get_size()
        self.chunk = chunk  # rows per chunk when the rows can be read chunk by chunk, else 0

    @property
    def padded(self):
        """Rows of room needed to read the rows: whole chunks when read chunk by chunk."""
        return -(-self.n // self.chunk) * self.chunk if self.chunk else self.n

    @property
    def span(self):
        return self.padded * self.rowsize


class H5pyReader(object):
    """Reads protopipe's inputs with h5py's low-level API, each call kept to what is needed.

    What it learns once (the type of each root attribute and how to decode it) is kept, so
    most inputs cost a handful of HDF5 calls.
    """

    def __init__(self):
        self.fapl = h5p.create(h5p.FILE_ACCESS)
        self.fapl.set_fclose_degree(h5f.CLOSE_STRONG)  # closing a file closes all in it
        self.decoders = {}  # attribute name -> (TypeID, dtype, is a string) last decoded
        self.class_type = h5t.C_S1.copy()  # reads CLASS: exact for values up to 15 bytes
        self.class_type.set_size(16)
        self.class_type.set_cset(h5t.CSET_UTF8)

    def open(self, path):
        return h5f.open(os.fsencode(path), h5f.ACC_RDONLY, self.fapl)

    def value(self, loc, name):
        """An attribute's value as PyTables returns it, for scalars of the kinds protopipe writes.

        Raises KeyError if there is no such attribute, Fallback for anything PyTables may read
        otherwise (bools, bytes, which PyTables may unpickle, arrays ...).
        """
        aid = h5a.open(loc, name)  # KeyError if absent
        tid = aid.get_type()
        known = self.decoders.get(name)
        if known is None or not tid.equal(known[0]):
            kind = tid.get_class()
            if kind == h5t.STRING:
                if tid.is_variable_str() or tid.get_cset() != h5t.CSET_UTF8:
                    raise Fallback()
            elif kind not in (h5t.INTEGER, h5t.FLOAT):
                raise Fallback()
            known = self.decoders[name] = (tid, aid.dtype, kind == h5t.STRING)
        if aid.shape != ():
            raise Fallback()
        value = numpy.empty((), known[1])
        aid.read(value, mtype=known[0])
        value = value[()]
        return numpy.str_(value.decode("utf-8")) if known[2] else value

    def is_table(self, did):
        """Whether PyTables sees dataset ``did`` as a Table (its CLASS attribute is TABLE)."""
        value = numpy.empty((), "S16")
        h5a.open(did, b"CLASS").read(value, mtype=self.class_type)
        return value[()] == b"TABLE"

    def scan(self, fid):
        """(root attributes, kind, [InputTable]) of an input; kind None if it is incomplete.

        Raises Fallback unless every root object is a PyTables table: a hard link (not one
        of PyTables' hidden nodes) to a dataset of rank 1 whose CLASS is TABLE.
        """
        attrs = {}
        for name in FAST_ATTRS:
            try:
                attrs[name.decode()] = self.value(fid, name)
            except KeyError:  # absent (plain tables): as in PyTables' root attributes
                pass
        if "status" in attrs and attrs["status"] != "complete":
            return attrs, None, []
        links = []
        root = h5g.open(fid, b"/")  # held: its LinkProxy does not keep it open
        root.links.iterate(lambda name, info: links.append((name, info.type)), info=True)
        kind = "DL2" if any(name == b"reco_events" for name, _ in links) else "TRAINING"
        found = []
        for name, link_type in links:
            if link_type != h5l.TYPE_HARD or name.startswith(b"_"):
                raise Fallback()  # soft links, PyTables' hidden nodes
            did = h5d.open(fid, name)  # a group, which PyTables walks into, raises
            shape = did.shape
            if len(shape) != 1 or not self.is_table(did):
                raise Fallback()
            dcpl = did.get_create_plist()
            chunk = 0  # filtered or older h5py: H5Dread (or PyTables if h5py lacks the filter)
            if DIRECT_CHUNKS and dcpl.get_layout() == h5d.CHUNKED and not dcpl.get_nfilters():
                chunk = dcpl.get_chunk()[0]
            found.append(InputTable("/" + name.decode("utf-8"), did, did.get_type(), shape[0],
                                    chunk))
        return attrs, kind, found

    def read(self, table, out):
        """Read the rows of ``table`` as stored into ``out`` (uint8, at least table.span bytes).

        Unfiltered chunks are copied as they are (no type conversion machinery: for these
        types, the bytes H5Dread would return), anything else through H5Dread.
        """
        if not table.n:
            return
        if table.chunk:
            step = table.chunk * table.rowsize
            for pos, row in zip(range(0, table.span, step), range(0, table.n, table.chunk)):
                table.did.read_direct_chunk((row,), out=out[pos:pos + step])
        else:
            rows = out[:table.n * table.rowsize].view(numpy.dtype((numpy.void, table.rowsize)))
            table.did.read(h5s.ALL, h5s.ALL, rows, mtype=table.did.get_type())


def stored_layout(dtype):
    """``dtype`` with bools as u1: two dtypes with the same stored layout compare equal."""
    if dtype.names is not None:
        return numpy.dtype({
            "names": list(dtype.names),
            "formats": [stored_layout(dtype.fields[n][0]) for n in dtype.names],
            "offsets": [dtype.fields[n][1] for n in dtype.names],
            "itemsize": dtype.itemsize,
        })
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return numpy.dtype((stored_layout(base), shape))
    return numpy.dtype("u1") if dtype.kind == "b" else dtype


def distinct(column):
    """The distinct values of a column, as a list (one value: no sort)."""
    low, high = column.min(), column.max()
    return [low.item()] if low == high else numpy.unique(column).tolist()


def output_for(m, where, enc, rows):
    """The output table rows of type ``enc`` go to, or Fallback if they cannot go as stored.

    The first time, h5py's dtype of ``enc`` (bools as u1) must have the stored layout of the
    output table's dtype (PyTables'); then ``enc`` must be that same HDF5 type.
    """
    output = m.outputs.get(where)
    if output is None:
        raise Fallback()  # PyTables creates the output table
    if output.enc is None:
        if stored_layout(h5t.decode(enc).dtype) != stored_layout(output.dtype):
            raise Fallback()
        output.enc = enc
    elif enc != output.enc:
        raise Fallback()  # another type: PyTables refuses it (dtype mismatch) or converts it
    if rows > output.capacity:
        raise Fallback()  # a big input: its per-file overhead does not matter
    return output


def merge_with_h5py(path, m, reader):
    """Merge one input, reading it with h5py; False (nothing done) if PyTables must read it."""
    try:
        fid = reader.open(path)
    except Exception:
        return False  # unreadable: PyTables says why, as it always did
    try:
        try:
            attrs, kind, found = reader.scan(fid)
            if kind is not None:
                if m.first_attrs is None:
                    raise Fallback()  # the first merged input: PyTables copies all its attributes
                staged = []
                for table in found:  # read everything before accounting for anything
                    output = output_for(m, table.where, table.enc, table.padded)
                    reader.read(table, output.reserve(table.padded).view(numpy.uint8))
                    staged.append((output, table.n))
        except Exception:  # Fallback, or an input h5py cannot read (a missing filter ...)
            return False
    finally:
        fid.close()
    if kind is None:
        m.note("skipping %s: not a complete protopipe output (status=%r)" % (path, attrs.get("status")))
    else:
        m.take(path, attrs, kind, staged)
    return True


def merge(out_path, in_paths, note=note, engine=None):
    """Merge ``in_paths`` into ``out_path``; ``note`` receives skip and warning messages.

    ``engine``: "h5py" (the default when h5py is importable) reads the inputs with h5py's
    low-level API, and any input it cannot read exactly as PyTables would with PyTables;
    "tables" reads every input with PyTables. The output is the same either way.
    """
    if engine is None:
        engine = "h5py" if h5py is not None else "tables"
    if engine not in ENGINES:
        raise ValueError("engine must be one of %s, not %r" % (", ".join(ENGINES), engine))
    if engine == "h5py" and h5py is None:
        raise MergeError("h5py is not importable here")
    part = out_path + ".part"
    if os.path.abspath(out_path) in [os.path.abspath(p) for p in in_paths]:
        raise MergeError("output %s is also an input" % out_path)
    out = tables.open_file(part, mode="w")
    try:
        m = Merge(out, len(in_paths), note)
        reader = H5pyReader() if engine == "h5py" else None
        for path in in_paths:
            if reader is None or not merge_with_h5py(path, m, reader):
                merge_with_tables(path, m)
        if m.merged == 0:
            raise MergeError("no usable input among %d file(s)" % len(in_paths))
        m.finish()
        out.close()
    except BaseException:
        out.close()
        if os.path.exists(part):
            os.remove(part)
        raise
    os.replace(part, out_path)
    return m.merged, m.num_showers


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", required=True, help="merged output file")
    parser.add_argument("inputs", nargs="+", help="protopipe TRAINING or DL2 files")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="read inputs with h5py (default when importable) or PyTables")
    args = parser.parse_args(argv)
    if args.engine == "h5py" and h5py is None:
        parser.error("--engine h5py: h5py is not importable here")
    warnings.simplefilter("ignore", tables.NaturalNameWarning)
    try:
        merged, num_showers = merge(args.output, args.inputs, engine=args.engine)
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
